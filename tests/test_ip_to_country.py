"""IP To Country: every distinct IP of events gets its place once; events are joined, never rewritten."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import maxminddb
import pytest
from geoip2fast import GeoIP2Fast

from conftest import query_rows, reading
from mmdb_writer import write_mmdb
from optimus import geo
from optimus.pipeline import Pipeline
from optimus.warehouse import connect

PUBLIC_V4 = {"8.8.8.8": "US", "1.1.1.1": "AU", "130.102.0.1": "AU"}  # Google, Cloudflare/APNIC, UQ
PUBLIC_V6 = {"2001:4860:4860::8888": "US", "2a00:1450:4001:82a::200e": "DE"}  # Google DNS, Google Frankfurt
REASONS = {
    "10.1.2.3": "private",
    "192.168.0.7": "private",
    "fd00::1": "private",
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "not-an-ip": "invalid",
    "999.1.1.1": "invalid",
}
EVENT_COLUMNS = (
    "event_id VARCHAR, time TIMESTAMP, event_date DATE, username VARCHAR, user_id BIGINT, course_id VARCHAR, "
    "course_key VARCHAR, event_type VARCHAR, ip VARCHAR, file_id BIGINT, line BIGINT"
)


def add_events(wh, rows: list[tuple[str, str]]) -> None:
    """Events as Clickstream writes them (only the columns IPToCountry reads need values)."""
    wh.execute(f"CREATE TABLE IF NOT EXISTS events ({EVENT_COLUMNS})")
    start = int(wh.scalar("SELECT count(*) FROM events"))
    wh.executemany(
        "INSERT INTO events (event_id, time, event_date, username, course_id, course_key, event_type, ip, line) "
        "VALUES (?, ?, ?, ?, ?, ?, 'page_view', ?, ?)",
        [
            [f"e{start + i}", datetime(2024, 1, 2, 3, 4, 5), date(2024, 1, 2), "ann", f"course-v1:{key}", key, ip, start + i]
            for i, (key, ip) in enumerate(rows)
        ],
    )


def run(settings):
    """One IPToCountry run through the pipeline; returns the service (its look-up count) and the summary.
    Not conftest.ingest: the look-up count lives on the service instance of this run's pipeline."""
    wh = connect(settings)
    try:
        pipeline = Pipeline(settings, wh)
        pipeline.setup()
        summary = pipeline.run_once(only=["IPToCountry"], force=True)
        return pipeline.services["IPToCountry"], summary, wh.query_dicts("SELECT * FROM ip_geo ORDER BY ip")
    finally:
        wh.close()


def with_events(settings, rows: list[tuple[str, str]]) -> None:
    wh = connect(settings)
    try:
        Pipeline(settings, wh).setup()
        add_events(wh, rows)
    finally:
        wh.close()


def test_public_addresses_get_their_country_and_odd_ones_their_reason(data_path: Path, settings_for, backend) -> None:
    settings = settings_for(data_path, **backend)
    ips = {**PUBLIC_V4, **PUBLIC_V6}
    with_events(settings, [("UQx+A+1", ip) for ip in [*ips, *REASONS]] + [("UQx+B+1", "8.8.8.8"), ("UQx+B+1", "")])
    service, summary, rows = run(settings)
    assert summary.services[0].status == "ok", summary.services[0].error
    by_ip = {r["ip"]: r for r in rows}
    assert set(by_ip) == set(ips) | set(REASONS)  # one row per distinct IP; the empty one is no IP
    direct = GeoIP2Fast(geoip2fast_data_file="geoip2fast-ipv6.dat.gz")  # the package's own API, independently
    table = {
        r[0]: r for r in (line.split(",") for line in (Path(geo.__file__).parent / "data" / "countries.csv").read_text().splitlines()[1:])
    }
    for ip, expected in ips.items():
        row = by_ip[ip]
        assert row["country_code"] == expected == direct.lookup(ip).country_code, ip
        assert row["failure"] is None
        assert (row["country_name"], row["continent"]) == (table[expected][1], table[expected][2])
        assert row["source"].startswith("geoip2fast") and row["source_date"] is not None
    for ip, reason in REASONS.items():
        assert by_ip[ip]["failure"] == reason and by_ip[ip]["country_code"] is None, ip
    # only the public addresses reached a source
    assert service.lookups == len(ips)


def test_second_run_looks_nothing_up_and_new_ips_only_on_the_next(data_path: Path, settings_for, backend) -> None:
    settings = settings_for(data_path, **backend)
    with_events(settings, [("UQx+A+1", "8.8.8.8"), ("UQx+A+1", "10.0.0.1"), ("UQx+A+1", "bogus"), ("UQx+B+1", "203.0.113.9")])
    first, _, rows = run(settings)
    looked_up_at = {r["ip"]: r["looked_up_at"] for r in rows}
    second, _, again = run(settings)
    assert second.lookups == 0
    assert {r["ip"]: r["looked_up_at"] for r in again} == looked_up_at
    with_events(settings, [("UQx+C+1", "1.1.1.1"), ("UQx+C+1", "8.8.8.8")])
    third, summary, rows = run(settings)
    assert third.lookups == 1  # 1.1.1.1 only
    touched = {
        r[0] for r in query_rows(settings, "SELECT course_key FROM service_run_changes WHERE run_id = ?", [summary.services[0].run_id])
    }
    # the events are joined, not rewritten: events_geo gives each event its IP's country
    joined = query_rows(settings, "SELECT ip, country_code FROM events_geo WHERE course_key = 'UQx+C+1' ORDER BY ip")
    with reading(settings) as wh:
        assert "country_code" not in wh.columns("events")
    assert touched == {"UQx+C+1"}
    assert joined == [("1.1.1.1", "AU"), ("8.8.8.8", "US")]


def city_record(code: str, name: str, continent: str, city: str, region: str, lat: float, lon: float) -> dict:
    return {
        "continent": {"code": continent[:2].upper(), "names": {"en": continent}},
        "country": {"iso_code": code, "names": {"en": name}},
        "subdivisions": [{"iso_code": "X", "names": {"en": region}}],
        "city": {"names": {"en": city}},
        "location": {"latitude": lat, "longitude": lon},
    }


def test_configured_mmdb_takes_precedence_and_adds_the_city(data_path: Path, settings_for, tmp_path: Path, backend) -> None:
    built = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
    city_db, country_db = tmp_path / "city.mmdb", tmp_path / "country.mmdb"
    # deliberately not the real places: the answer must come from these files
    write_mmdb(
        city_db, {"8.8.8.0/24": city_record("NZ", "New Zealand", "Oceania", "Dunedin", "Otago", -45.87, 170.5)}, "GeoLite2-City", built
    )
    write_mmdb(
        country_db,
        {"8.8.8.0/24": {"country": {"iso_code": "FR"}}, "2001:4860::/32": {"country": {"iso_code": "FR"}}},
        "GeoLite2-Country",
        built,
    )
    settings = settings_for(data_path, geoip_city_db=city_db, geoip_country_db=country_db, **backend)
    with_events(settings, [("UQx+A+1", "8.8.8.8"), ("UQx+A+1", "2001:4860:4860::8888"), ("UQx+A+1", "1.1.1.1")])
    service, _, rows = run(settings)
    by_ip = {r["ip"]: r for r in rows}
    city = maxminddb.open_database(str(city_db)).get("8.8.8.8")
    assert (by_ip["8.8.8.8"]["country_code"], by_ip["8.8.8.8"]["city"], by_ip["8.8.8.8"]["region"]) == (
        city["country"]["iso_code"],
        city["city"]["names"]["en"],
        city["subdivisions"][0]["names"]["en"],
    )
    assert (by_ip["8.8.8.8"]["latitude"], by_ip["8.8.8.8"]["longitude"]) == (city["location"]["latitude"], city["location"]["longitude"])
    assert by_ip["8.8.8.8"]["source"] == "GeoLite2-City (city.mmdb)" and by_ip["8.8.8.8"]["source_date"] == date(2026, 3, 1)
    # not in the city file: the country file answers; in neither: the bundled data does
    assert by_ip["2001:4860:4860::8888"]["country_code"] == "FR" and by_ip["2001:4860:4860::8888"]["city"] is None
    assert by_ip["2001:4860:4860::8888"]["country_name"] == "France"
    assert by_ip["1.1.1.1"]["country_code"] == "AU" and by_ip["1.1.1.1"]["source"].startswith("geoip2fast")


def test_not_found_is_retried_only_when_the_sources_change(data_path: Path, settings_for, tmp_path: Path, backend) -> None:
    unrouted = "2c0f:ffff:ffff::1"  # in the IPv6 global range, allocated to no country
    assert geo.classify(unrouted)[1] is None and GeoIP2Fast(geoip2fast_data_file="geoip2fast-ipv6.dat.gz").lookup(
        unrouted
    ).country_code in ("--", "")
    settings = settings_for(data_path, **backend)
    with_events(settings, [("UQx+A+1", unrouted)])
    first, _, rows = run(settings)
    assert rows[0]["failure"] == "not found" and first.lookups == 1
    second, _, _ = run(settings)
    assert second.lookups == 0
    country_db = tmp_path / "country.mmdb"
    write_mmdb(country_db, {"2c0f:ffff::/32": {"country": {"iso_code": "ZA"}}}, "DBIP-Country-Lite", 1_780_000_000)
    third, _, rows = run(settings_for(data_path, geoip_country_db=country_db, **backend))
    assert third.lookups == 1
    assert (rows[0]["country_code"], rows[0]["country_name"], rows[0]["continent"], rows[0]["failure"]) == (
        "ZA",
        "South Africa",
        "Africa",
        None,
    )


@pytest.mark.parametrize(
    "ip, reason",
    [
        ("::ffff:10.0.0.1", "private"),
        ("8.8.8.8, 10.0.0.1", None),
        ("[::1]", "loopback"),
        ("100.64.3.4", "private"),
        ("", "invalid"),
        ("169.254.0.1", "private"),
    ],
)
def test_classify_reads_addresses_as_edx_logs_them(ip: str, reason: str | None) -> None:
    address, failure = geo.classify(ip)
    assert failure == reason
    if reason is None:
        assert address == ipaddress.ip_address("8.8.8.8")


def test_status_warns_when_the_data_is_over_a_year_old(data_path: Path, settings_for, cli) -> None:
    settings = settings_for(data_path)
    with_events(settings, [("UQx+A+1", "8.8.8.8")])
    run(settings)
    wh = connect(settings)
    try:
        built = wh.scalar("SELECT source_date FROM geo_sources")
        assert geo.staleness_warning(wh, today=built) is None
        assert geo.staleness_warning(wh, today=built + timedelta(days=365)) is None
        warning = geo.staleness_warning(wh, today=built + timedelta(days=366))
        assert warning is not None and str(built) in warning
    finally:
        wh.close()
    result = cli(["status"], settings)
    stale = (datetime.now(UTC).date() - built).days > 365
    assert ("over a year old" in " ".join(result.output.split())) == stale
    data = json.loads(cli(["status", "--json"], settings).stdout)
    assert bool(data["warnings"]) == stale


def test_recompute_looks_up_again_with_new_data(data_path: Path, settings_for, cli, tmp_path: Path) -> None:
    settings = settings_for(data_path)
    with_events(settings, [("UQx+A+1", "8.8.8.8"), ("UQx+B+1", "1.1.1.1")])
    run(settings)
    country_db = tmp_path / "country.mmdb"
    write_mmdb(
        country_db,
        {"8.8.8.0/24": {"country": {"iso_code": "CA"}}, "1.1.1.0/24": {"country": {"iso_code": "CA"}}},
        "GeoLite2-Country",
        1_780_000_000,
    )
    newer = settings_for(data_path, geoip_country_db=country_db)
    _, _, rows = run(newer)
    assert {r["ip"]: r["country_code"] for r in rows} == {"8.8.8.8": "US", "1.1.1.1": "AU"}  # found ones stay
    env = {"OPTIMUS_GEOIP_COUNTRY_DB": str(country_db)}
    result = cli(["recompute", "--service", "IPToCountry", "--course", "course-v1:UQx+A+1"], newer, env=env)
    assert result.exit_code == 0, result.output
    assert dict(query_rows(newer, "SELECT ip, country_code FROM ip_geo")) == {"8.8.8.8": "CA", "1.1.1.1": "AU"}
    assert cli(["recompute", "--service", "IPToCountry"], newer, env=env).exit_code == 0
    assert dict(query_rows(newer, "SELECT ip, country_code FROM ip_geo")) == {"8.8.8.8": "CA", "1.1.1.1": "CA"}
