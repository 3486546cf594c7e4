"""Where an IP address is: the look-up sources behind IPToCountry, and the country table.

The default source needs no download and no account: the GeoLite2 country data shipped inside
the geoip2fast package (IPv4 and IPv6). A configured `.mmdb` file (MaxMind GeoLite2/GeoIP2 Country
or City, DB-IP Lite), read with maxminddb, takes precedence; a city database adds region, city,
latitude and longitude. Addresses that cannot be located anywhere (private, loopback, invalid) are
recognised by the standard library before any source is asked, so that no source's quirks decide
them. Country names and continents come from `data/countries.csv`, shipped with the package.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from optimus.errors import ConfigError

PRIVATE, LOOPBACK, INVALID, NOT_FOUND = "private", "loopback", "invalid", "not found"
STALE_AFTER = timedelta(days=365)
# Codes that some databases give to a whole region rather than a country.
_REGION_CODES = {"EU": ("Europe", "Europe"), "AP": ("Asia/Pacific Region", "Asia"), "ASIA": ("Asia", "Asia")}


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    continent: str


@lru_cache(maxsize=1)
def countries() -> dict[str, Country]:
    """ISO 3166 alpha-2 code -> English name and continent, from the table shipped with Optimus."""
    text = (files("optimus") / "data" / "countries.csv").read_text(encoding="utf-8")
    return {row["code"]: Country(row["code"], row["name"], row["continent"]) for row in csv.DictReader(text.splitlines())}


def country_name(code: str | None) -> str | None:
    """The English name of a country code ('AU' -> 'Australia'); None for an unknown or empty code."""
    if not code:
        return None
    found = countries().get(code.strip().upper())
    return found.name if found else None


@dataclass
class Place:
    """What one look-up found; `failure` says why nothing was found."""

    country_code: str | None = None
    country_name: str | None = None
    continent: str | None = None
    region: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    failure: str | None = None
    source: str | None = None
    source_date: date | None = None


def classify(ip: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, str | None]:
    """Parse an address as edX logs it, and say why it cannot be located when that is clear already.

    A forwarded list ('client, proxy') is taken by its first address; an IPv4-mapped IPv6 address
    by its IPv4 form.
    """
    text = (ip or "").strip().split(",")[0].strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address: Any = ipaddress.ip_address(text)
    except ValueError:
        return None, INVALID
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return address, LOOPBACK
    if address.is_private or address.is_link_local or address.is_multicast or address.is_reserved or address.is_unspecified:
        return address, PRIVATE
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return address, PRIVATE  # carrier-grade NAT: shared, not a location
    return address, None


class Source(Protocol):
    """One look-up source: a name and date to record, and a look-up that returns None when not found."""

    name: str
    built: date | None

    def lookup(self, address: str) -> Place | None: ...


class Geoip2FastSource:
    """The GeoLite2 country data (IPv4 and IPv6) shipped inside the geoip2fast package."""

    DATA_FILE = "geoip2fast-ipv6.dat.gz"

    def __init__(self) -> None:
        import geoip2fast

        self._db = _geoip2fast()
        info = str(getattr(self._db, "source_info", "") or "")
        self.name = f"geoip2fast {getattr(geoip2fast, '__version__', '')}: {info}".strip()
        match = re.search(r"(\d{4})(\d{2})(\d{2})\D*$", info)
        self.built = date(int(match[1]), int(match[2]), int(match[3])) if match else None

    def lookup(self, address: str) -> Place | None:
        found = self._db.lookup(address)
        code = str(found.country_code or "")
        # geoip2fast gives '--', '' or a numeric code for what it cannot place
        if not code or not code.isalpha():
            return None
        return Place(country_code=code, country_name=found.country_name or None)


@lru_cache(maxsize=1)
def _geoip2fast() -> Any:
    """One loaded copy per process: geoip2fast keeps its data in module globals."""
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast(geoip2fast_data_file=Geoip2FastSource.DATA_FILE)


class MmdbSource:
    """A MaxMind DB file (GeoLite2/GeoIP2 Country or City, DB-IP Lite country or city)."""

    def __init__(self, path: Path, setting: str) -> None:
        import maxminddb

        if not path.is_file():
            raise ConfigError(f"setting '{setting}': {path} does not exist")
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(f"setting '{setting}': {path} is not a MaxMind DB file: {exc}") from None
        meta = self._reader.metadata()
        self.name = f"{meta.database_type} ({path.name})"
        self.built = datetime.fromtimestamp(meta.build_epoch, tz=UTC).date() if meta.build_epoch else None

    def lookup(self, address: str) -> Place | None:
        found = self._reader.get(address)
        if not isinstance(found, dict):
            return None
        record: dict[str, Any] = found  # nested maps of a known shape (GeoIP2/GeoLite2), read by name
        country = record.get("country") or record.get("registered_country") or {}
        code = country.get("iso_code")
        if not code:
            return None
        subdivisions = record.get("subdivisions") or []
        location = record.get("location") or {}
        return Place(
            country_code=code,
            country_name=_english(country),
            continent=_english(record.get("continent") or {}),
            region=_english(subdivisions[0]) if subdivisions else None,
            city=_english(record.get("city") or {}),
            latitude=location.get("latitude"),
            longitude=location.get("longitude"),
        )

    def close(self) -> None:
        self._reader.close()


def _english(entry: dict[str, Any]) -> str | None:
    names = entry.get("names") or {}
    return names.get("en") if isinstance(names, dict) else None


class Locator:
    """The configured sources in order of precedence: city .mmdb, country .mmdb, then geoip2fast."""

    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources
        self.lookups = 0  # source look-ups made (tests count them)

    @classmethod
    def from_settings(cls, settings: Any) -> Locator:
        sources: list[Source] = []
        if settings.geoip_city_db:
            sources.append(MmdbSource(Path(settings.geoip_city_db), "geoip_city_db"))
        if settings.geoip_country_db:
            sources.append(MmdbSource(Path(settings.geoip_country_db), "geoip_country_db"))
        sources.append(Geoip2FastSource())
        return cls(sources)

    @property
    def signature(self) -> str:
        """Names every source with its date: when it changes, failed look-ups are tried again."""
        return " + ".join(f"{s.name} [{s.built or 'undated'}]" for s in self.sources)

    def locate(self, ip: str) -> Place:
        address, failure = classify(ip)
        if failure is not None or address is None:
            return Place(failure=failure or INVALID, source=self.signature)
        text = str(address)
        for source in self.sources:
            self.lookups += 1
            place = source.lookup(text)
            if place is not None:
                _complete(place)
                place.source, place.source_date = source.name, source.built
                return place
        return Place(failure=NOT_FOUND, source=self.signature)

    def close(self) -> None:
        for source in self.sources:
            if isinstance(source, MmdbSource):
                source.close()


def _complete(place: Place) -> None:
    """One naming for every source: the shipped table's name and continent for the code."""
    code = (place.country_code or "").upper()
    place.country_code = code
    known = countries().get(code)
    if known:
        place.country_name, place.continent = known.name, known.continent
    elif code in _REGION_CODES:
        place.country_name = place.country_name or _REGION_CODES[code][0]
        place.continent = place.continent or _REGION_CODES[code][1]


def staleness_warning(wh: Any, today: date | None = None) -> str | None:
    """A warning when the newest look-up data used in the last run is over a year old (for `optimus status`)."""
    if not wh.table_exists("geo_sources"):
        return None
    rows = wh.query(
        "SELECT source, source_date FROM geo_sources WHERE last_used = (SELECT max(last_used) FROM geo_sources) "
        "AND source_date IS NOT NULL ORDER BY source_date DESC"
    )
    if not rows:
        return None
    source, built = rows[0]
    today = today or datetime.now(UTC).date()
    if today - built <= STALE_AFTER:
        return None
    return (
        f"IP look-up data {source} is from {built}, over a year old: configure a newer .mmdb "
        "(geoip_country_db / geoip_city_db) or upgrade geoip2fast"
    )
