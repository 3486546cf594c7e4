"""Sample learners: invented names, profiles, enrolments, certificates and network origins.

All people are generated from syllable-free name lists combined at random, so they are not
real people; the mix of quirks (missing profile fields, learners under 15, staff, learners
without events) mirrors what real packages hold.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

FIRST = [
    "Olivia",
    "Liam",
    "Amelia",
    "Noah",
    "Mia",
    "Jack",
    "Aisha",
    "Wei",
    "Priya",
    "Mateo",
    "Sofía",
    "Kofi",
    "Chloé",
    "Hiroshi",
    "Fatima",
    "Lars",
    "Zoë",
    "Ngozi",
    "Arjun",
    "Mei",
    "Lucas",
    "Isla",
    "Tomás",
    "Anika",
    "Yusuf",
    "Ingrid",
    "Thandiwe",
    "Rafael",
    "Leilani",
    "Dmitri",
    "Siobhan",
    "Kai",
    "Nadia",
    "Joaquín",
    "Emeka",
    "Hana",
    "Oscar",
    "Ava",
    "Min-jun",
    "Lucía",
]
LAST = [
    "Nguyen",
    "Smith",
    "Okafor",
    "Chen",
    "Patel",
    "García",
    "Müller",
    "Kowalski",
    "O'Brien",
    "Tanaka",
    "Silva",
    "Haddad",
    "Johansson",
    "Mensah",
    "Kim",
    "Rossi",
    "Dubois",
    "Singh",
    "Wang",
    "Taylor",
    "Hernández",
    "Novak",
    "Abubakar",
    "Walker",
    "Papadopoulos",
    "Yilmaz",
    "Fernando",
    "Andersen",
    "MacDonald",
    "Ito",
    "Costa",
    "Ivanova",
    "Brown",
    "Lee",
    "Zhang",
    "Da Silva",
    "Murphy",
    "Khan",
]
DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "uq.net.au",
    "hotmail.co.uk",
    "qq.com",
    "yahoo.co.in",
    "icloud.com",
    "gmx.de",
    "example.edu",
]
# Public address blocks of real ISPs per country (first two octets), so IP-to-country has work to do.
IP_BLOCKS = {
    "AU": ["1.120", "101.160", "203.2", "120.155", "144.136"],
    "US": ["73.15", "24.5", "98.119", "66.172", "184.90"],
    "IN": ["122.179", "49.36", "117.196"],
    "GB": ["82.45", "86.160", "81.2"],
    "CN": ["36.110", "111.200", "223.104"],
    "BR": ["177.32", "189.6"],
    "DE": ["84.150", "91.64"],
    "NG": ["105.112", "41.190"],
    "MX": ["187.188"],
    "ID": ["36.72", "114.124"],
    "CA": ["99.224", "142.112"],
    "PH": ["112.198"],
}
COUNTRY_WEIGHTS = {"AU": 22, "US": 18, "IN": 14, "GB": 8, "CN": 6, "BR": 5, "DE": 4, "NG": 4, "MX": 3, "ID": 4, "CA": 4, "PH": 3}
IPV6 = ["2001:8003:6c0a:d200:1d2:3e4f:5a6b:7c8d", "2600:1700:3e40:8f90:a1b2:c3d4:e5f6:789", "2a02:c7f:5e6a:1b00::2"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36 Edg/121.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.64 Mobile Safari/537.36",
]
MOBILE_AGENTS = [
    "edX/org.edx.mobile (2.26.1; OS Version 14 (Build UP1A.231005.007))",
    "edX/org.edx.mobile (4.1.0; OS Version 17.3 (Build 21D61))",
]
LANGS = [
    "en-AU,en;q=0.9",
    "en-US,en;q=0.9",
    "zh-CN,zh;q=0.9,en;q=0.8",
    "es-MX,es;q=0.9",
    "hi-IN,en;q=0.8",
    "de-DE,de;q=0.9,en;q=0.7",
    "pt-BR,pt;q=0.9",
]
LOE = ["p", "m", "b", "a", "hs", "jhs", "el", "none", "other", "p_se", "p_oth", "", None]
LOE_W = [3, 14, 25, 5, 15, 3, 1, 1, 4, 1, 1, 10, 10]
GENDER = ["f", "m", "o", "", None]
GENDER_W = [40, 40, 3, 7, 10]
GOALS = [
    "Career change",
    "Upskill for work\tand fun",
    "Curious about the topic",
    "Prepare for uni",
    "Help my kids with homework\r\nand learn myself",
    "Path to C:\\courses\\notes",
    "",
]


@dataclass(slots=True)
class Enrollment:
    course: int  # course index
    created: dt.datetime
    mode: str
    is_active: int


@dataclass(slots=True)
class Learner:
    """One learner; `kind` is 'active', 'silent' (never any event) or 'forum_only'."""

    user_id: int
    username: str
    email: str
    first_name: str
    last_name: str
    profile_name: str
    year_of_birth: int | None
    gender: str | None
    loe: str | None
    country: str
    ip: str
    agent: str
    lang: str
    date_joined: dt.datetime
    kind: str
    engagement: float
    is_staff: int
    enrollments: list[Enrollment] = field(default_factory=list)
    mailing_address: str | None = None
    goals: str | None = None


def _ip(rng: random.Random, country: str) -> str:
    return f"{rng.choice(IP_BLOCKS[country])}.{rng.randint(1, 254)}.{rng.randint(1, 254)}"


def make_learners(n: int, n_courses: int, start: dt.date, days: int, seed: int) -> list[Learner]:
    """Generate `n` learners and their enrolments over `n_courses` courses."""
    rng = random.Random(f"{seed}:people")
    countries = list(COUNTRY_WEIGHTS)
    weights = list(COUNTRY_WEIGHTS.values())
    taken: set[str] = set()
    t0 = dt.datetime.combine(start, dt.time())
    out: list[Learner] = []
    uid = 4000 + rng.randint(0, 999)
    for i in range(n):
        uid += rng.randint(1, 9)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        base = rng.choice([f"{first}{last}", f"{first[0]}{last}", f"{first}_{last[:3]}", f"{last}{first[:2]}"])
        base = "".join(ch for ch in base if ch.isascii() and ch.isalnum() or ch == "_")
        username = base if rng.random() < 0.3 else f"{base}{rng.randint(1, 99)}"
        while username in taken:
            username = f"{base}{rng.randint(100, 99999)}"
        taken.add(username)
        email = f"{username.lower()}@{rng.choice(DOMAINS)}"
        country = rng.choices(countries, weights)[0]
        ip = _ip(rng, country)
        # quirks anchored to fixed indexes so even tiny samples show them
        if i == 4:
            ip = IPV6[0]
        elif i == 1:
            ip = "10.3.14.15"  # an address from inside the campus network
        elif i % 97 == 11:
            ip = IPV6[1 + i % 2]
        if i % 29 == 5:
            yob: int | None = start.year - rng.randint(10, 14)  # under 15
        elif rng.random() < 0.08:
            yob = None
        else:
            yob = start.year - int(rng.triangular(15, 75, 24))
        profile_name = f"{first} {last}"
        if i % 41 == 2:
            profile_name = f"{first}\t{last}"  # tab typed into the name field
        elif i % 53 == 4:
            profile_name = f"{first} \\{last}\\"
        if i < 5 and n >= 20:
            kind = ["active", "active", "silent", "forum_only", "active"][i]
        else:
            r = rng.random()
            kind = "silent" if r < 0.08 else "forum_only" if r < 0.11 else "active"
        learner = Learner(
            user_id=uid,
            username=username,
            email=email,
            first_name=first,
            last_name=last,
            profile_name=profile_name,
            year_of_birth=yob,
            gender=rng.choices(GENDER, GENDER_W)[0],
            loe=rng.choices(LOE, LOE_W)[0],
            country=country,
            ip=ip,
            agent=rng.choice(AGENTS),
            lang=rng.choice(LANGS),
            date_joined=t0
            - dt.timedelta(days=rng.randint(1, 900), seconds=rng.randint(0, 86399), microseconds=rng.choice([0, rng.randint(1, 999999)])),
            kind=kind,
            engagement=rng.choice([0.15, 0.35, 0.5, 0.8]),
            is_staff=1 if i in (0,) or (i % 61 == 30) else 0,
            mailing_address=rng.choice(
                [
                    None,
                    "",
                    f"{rng.randint(1, 300)} Queen St\nBrisbane QLD 4000",
                    f"Flat {rng.randint(1, 9)}\r\n{rng.randint(1, 99)} High Rd\tLondon",
                ]
            ),
            goals=rng.choice(GOALS + [None]),
        )
        primary = i % n_courses
        courses = [primary]
        if n_courses > 1 and (i % 5 == 1):
            courses.append((primary + 1) % n_courses)
        for c in courses:
            created = t0 + dt.timedelta(
                days=rng.randint(-40, max(0, days - 1)), seconds=rng.randint(0, 86399), microseconds=rng.choice([0, rng.randint(1, 999999)])
            )
            mode = rng.choices(["honor", "audit", "verified"], [3, 5, 2])[0]
            # a few leave again: some of those who enrol during the sample unenrol the same day (a deactivated event)
            left = i % 37 == 6 or (created >= t0 and i % 9 == 4)
            learner.enrollments.append(Enrollment(c, created, mode, 0 if left else 1))
        out.append(learner)
    return out
