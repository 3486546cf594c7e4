"""IPToCountry: `ip_geo`, the place of every distinct IP seen in events.

Reads `events` (Clickstream); writes `ip_geo` (one row per distinct IP: country code, name and
continent; region, city, latitude and longitude with a city database; or the reason a look-up
failed), `geo_sources` (which data was used, and its date) and the view `events_geo` (events
joined to ip_geo: events are never rewritten). Needs Clickstream.

Only IPs not yet in ip_geo are looked up; IPs no source found are tried again only when the
sources change (private, loopback and invalid addresses never are). Courses whose events brought
new IPs are touched, so that Person Course recomputes them.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from optimus import geo
from optimus.config import Settings
from optimus.ledger import utcnow
from optimus.services.base import RunContext, Service, register
from optimus.warehouse.base import Warehouse

IP_GEO_COLUMNS = {
    "ip": "VARCHAR PRIMARY KEY",
    "country_code": "VARCHAR",
    "country_name": "VARCHAR",
    "continent": "VARCHAR",
    "region": "VARCHAR",
    "city": "VARCHAR",
    "latitude": "DOUBLE PRECISION",
    "longitude": "DOUBLE PRECISION",
    "failure": "VARCHAR",
    "source": "VARCHAR",
    "source_date": "DATE",
    "looked_up_at": "TIMESTAMP",
}
BATCH = 100_000  # IPs looked up and written per Arrow batch
_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "DOUBLE PRECISION": pa.float64(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
}


@register
class IPToCountry(Service):
    name = "IPToCountry"
    needs = ("Clickstream",)
    writes = {"ip_geo": "frozen", "geo_sources": "frozen", "events_geo": "frozen"}

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.lookups = 0  # source look-ups made by this instance (tests count them)

    def setup(self, wh: Warehouse) -> None:
        cols = ", ".join(f"{wh.quote(n)} {t}" for n, t in IP_GEO_COLUMNS.items())
        wh.execute(f"CREATE TABLE IF NOT EXISTS ip_geo ({cols})")
        wh.execute(
            "CREATE TABLE IF NOT EXISTS geo_sources (source VARCHAR PRIMARY KEY, source_date DATE, "
            "first_used TIMESTAMP NOT NULL, last_used TIMESTAMP NOT NULL)"
        )
        self._create_view(wh)

    def run(self, wh: Warehouse, ctx: RunContext) -> int:
        if not wh.table_exists("events"):
            return 0
        self._create_view(wh)
        locator = geo.Locator.from_settings(self.settings)
        now = utcnow()
        try:
            self._record_sources(wh, locator, now)
            # IPs no source found are tried again when the sources changed
            retry = [r[0] for r in wh.query("SELECT ip FROM ip_geo WHERE failure = ? AND source <> ?", [geo.NOT_FOUND, locator.signature])]
            wh.execute("DELETE FROM ip_geo WHERE failure = ? AND source <> ?", [geo.NOT_FOUND, locator.signature])
            if self.recompute == "all":
                wh.execute("DELETE FROM ip_geo")
            elif self.recompute:
                keys = sorted(self.recompute)
                marks = ", ".join("?" for _ in keys)
                wh.execute(f"DELETE FROM ip_geo WHERE ip IN (SELECT ip FROM events WHERE course_key IN ({marks}))", keys)
            ips = sorted(set(retry) | set(self._new_ips(wh, ctx)))
            if not ips:
                return 0
            ctx.progress.note(f"looking up {len(ips):,} new IP address(es)")
            for start in range(0, len(ips), BATCH):
                chunk = ips[start : start + BATCH]
                self._write(wh, chunk, [locator.locate(ip) for ip in chunk], now)
                ctx.wrote(len(chunk))
            self.lookups += locator.lookups
        finally:
            locator.close()
        for (course_key,) in wh.query(
            "SELECT DISTINCT e.course_key FROM events e JOIN ip_geo g ON g.ip = e.ip WHERE g.looked_up_at = ? AND e.course_key IS NOT NULL",
            [now],
        ):
            ctx.touch(course_key)
        return len(ips)

    def _new_ips(self, wh: Warehouse, ctx: RunContext) -> list[str]:
        """IPs of events not in ip_geo yet: of the event files ingested since the last run, or of all
        events on a first run or a recompute."""
        sql = "SELECT DISTINCT e.ip FROM events e WHERE e.ip IS NOT NULL AND e.ip <> '' AND NOT EXISTS (SELECT 1 FROM ip_geo g WHERE g.ip = e.ip)"
        params: list[object] = []
        if ctx.last_run_started is not None and not self.recompute:
            marks = ", ".join("?" for _ in self.needs)
            sql += (
                f" AND (e.file_id IS NULL OR e.file_id IN (SELECT id FROM ingest_files WHERE service IN ({marks}) "
                "AND state = 'done' AND finished_at >= ?))"
            )
            params = [*self.needs, ctx.last_run_started]
        return [r[0] for r in wh.query(sql, params)]

    @staticmethod
    def _write(wh: Warehouse, ips: list[str], places: list[geo.Place], now: datetime) -> None:
        """Add looked-up IPs in one Arrow batch."""
        columns: dict[str, list[object]] = {name: [] for name in IP_GEO_COLUMNS}
        for ip, place in zip(ips, places, strict=True):
            columns["ip"].append(ip)
            for name in IP_GEO_COLUMNS:
                if name not in ("ip", "looked_up_at"):
                    columns[name].append(getattr(place, name))
            columns["looked_up_at"].append(now)
        schema = pa.schema([(n, _ARROW_TYPES[t.replace(" PRIMARY KEY", "")]) for n, t in IP_GEO_COLUMNS.items()])
        wh.load_arrow("ip_geo", pa.table(columns, schema=schema))

    @staticmethod
    def _record_sources(wh: Warehouse, locator: geo.Locator, now: datetime) -> None:
        for source in locator.sources:
            if wh.scalar("SELECT count(*) FROM geo_sources WHERE source = ?", [source.name]):
                wh.execute("UPDATE geo_sources SET last_used = ?, source_date = ? WHERE source = ?", [now, source.built, source.name])
            else:
                wh.execute(
                    "INSERT INTO geo_sources (source, source_date, first_used, last_used) VALUES (?, ?, ?, ?)",
                    [source.name, source.built, now, now],
                )

    @staticmethod
    def _create_view(wh: Warehouse) -> None:
        """events_geo: every event with the place of its IP (recreated: events may gain columns)."""
        if not wh.table_exists("events"):
            return
        wh.execute("DROP VIEW IF EXISTS events_geo")
        wh.execute(
            "CREATE VIEW events_geo AS SELECT e.*, g.country_code, g.country_name, g.continent, g.region, g.city, "
            "g.latitude, g.longitude FROM events e LEFT JOIN ip_geo g ON g.ip = e.ip"
        )
