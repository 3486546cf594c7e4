"""The framework's own tables and the warehouse schema version.

Each migration is a list of statements applied in one transaction together with the new
version number, so a warehouse is never left between two versions. Services create their
own tables (see Service.setup); this holds only what the framework owns.
"""

from __future__ import annotations

from optimus.errors import SchemaVersionError
from optimus.warehouse.base import Warehouse

MIGRATIONS: list[list[str]] = [
    # version 1
    [
        "CREATE SEQUENCE IF NOT EXISTS ingest_files_id",
        """CREATE TABLE IF NOT EXISTS ingest_files (
            id BIGINT PRIMARY KEY DEFAULT nextval('ingest_files_id'),
            path VARCHAR NOT NULL UNIQUE,
            data_path VARCHAR NOT NULL,
            service VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            org VARCHAR,
            course_id VARCHAR,
            course_key VARCHAR,
            site VARCHAR,
            table_name VARCHAR,
            file_date DATE,
            package_date DATE,
            size BIGINT NOT NULL,
            mtime DOUBLE PRECISION NOT NULL,
            fingerprint VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            rows_loaded BIGINT,
            rows_quarantined BIGINT,
            error VARCHAR,
            note VARCHAR,
            attempts INTEGER NOT NULL DEFAULT 0,
            registered_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            run_id BIGINT
        )""",
        """CREATE TABLE IF NOT EXISTS ingest_skipped (
            path VARCHAR PRIMARY KEY,
            data_path VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            first_seen TIMESTAMP NOT NULL,
            last_seen TIMESTAMP NOT NULL
        )""",
        "CREATE SEQUENCE IF NOT EXISTS service_runs_id",
        """CREATE TABLE IF NOT EXISTS service_runs (
            id BIGINT PRIMARY KEY DEFAULT nextval('service_runs_id'),
            service VARCHAR NOT NULL,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            status VARCHAR NOT NULL,
            files BIGINT NOT NULL DEFAULT 0,
            rows BIGINT NOT NULL DEFAULT 0,
            rules_version INTEGER NOT NULL,
            error VARCHAR
        )""",
        """CREATE TABLE IF NOT EXISTS service_run_changes (
            run_id BIGINT NOT NULL,
            course_key VARCHAR NOT NULL,
            day DATE
        )""",
        """CREATE TABLE IF NOT EXISTS course_ids (
            course_key VARCHAR NOT NULL,
            course_id VARCHAR NOT NULL,
            form VARCHAR NOT NULL,
            first_seen TIMESTAMP NOT NULL,
            PRIMARY KEY (course_key, course_id)
        )""",
    ],
    # version 2: a file may be done with a loss ('damaged': e.g. a truncated .gz, every complete line
    # before the damage loaded), and values a service had to coerce are counted per file
    [
        "ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS coerced BIGINT",
        "ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS damage VARCHAR",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(wh: Warehouse) -> int:
    if not wh.table_exists("schema_info"):
        return 0
    return int(wh.scalar("SELECT max(version) FROM schema_info") or 0)


def ensure(wh: Warehouse) -> int:
    """Bring the warehouse to SCHEMA_VERSION, or refuse one written by a newer Optimus."""
    version = current_version(wh)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"warehouse {wh.url} has schema version {version}, newer than this Optimus understands "
            f"({SCHEMA_VERSION}); upgrade Optimus to use it"
        )
    if version == SCHEMA_VERSION:
        return version
    with wh.transaction():
        wh.execute(
            "CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
        )
        for number, statements in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            for statement in statements:
                wh.execute(statement)
            wh.execute("INSERT INTO schema_info (version) VALUES (?)", [number])
    return SCHEMA_VERSION
