"""DatabaseState: load every `.sql` (TSV) table of the weekly package, one warehouse table per edX table.

Reads `{org}-{course}-{run}-{table}-{prod|edge}-analytics.sql`; writes the table of the same
name (all courses together) in the raw schema (`edx.auth_user`, Warehouse.raw_schema), apart from
every table Optimus computes, so no dump's name can reach one of those; with provenance columns
course_id, course_key, site, package_date and file_id, plus `db_state_loads` (which package each
course's table came from) and `db_state_quarantine` (lines that could not be loaded), both in
Optimus's own schema. Needs nothing.

A dump's first line must be its header (identifiers only; a known table's key columns); its
table name, from the file name, a lower-case identifier: otherwise the file fails.

A newer package replaces a course's rows of a table in one transaction; an older package never
replaces newer rows; a table with no file in a course's newer package is emptied for that course
(edX writes no file for an empty table), and db_state_loads records it as empty.
"""

from __future__ import annotations

from optimus import courses, discovery
from optimus.config import Settings
from optimus.errors import IngestError
from optimus.formats import sql_tables
from optimus.ledger import LedgerFile, utcnow
from optimus.services.base import REGISTRY, FileResult, RunContext, Service, register
from optimus.warehouse.base import Warehouse, raw_table


@register
class DatabaseState(Service):
    name = "DatabaseState"
    claims = (discovery.SQL,)
    writes = {"<edX table>": "evolve", "db_state_loads": "frozen", "db_state_quarantine": "frozen"}

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._next: LedgerFile | None = None  # the file after the one being ingested (read_ahead)
        self._reading: Warehouse | None = None  # the warehouse reading it ahead

    def read_ahead(self, now: LedgerFile | None, then: LedgerFile | None) -> None:
        self._next = then
        if now is None and self._reading is not None:  # the run is over (or stops): let go of what was read ahead
            self._reading.prefetch_tsv(None)
            self._reading = None

    def setup(self, wh: Warehouse) -> None:
        wh.execute(f"CREATE SCHEMA IF NOT EXISTS {wh.quote(wh.raw_schema)}")
        wh.execute(
            "CREATE TABLE IF NOT EXISTS db_state_loads (course_key VARCHAR NOT NULL, site VARCHAR NOT NULL, "
            "table_name VARCHAR NOT NULL, course_id VARCHAR, package_date DATE, file_id BIGINT, rows BIGINT NOT NULL, "
            "empty BOOLEAN NOT NULL, loaded_at TIMESTAMP NOT NULL, PRIMARY KEY (course_key, site, table_name))"
        )
        wh.execute(
            "CREATE TABLE IF NOT EXISTS db_state_quarantine (file_id BIGINT NOT NULL, path VARCHAR NOT NULL, "
            "line BIGINT, reason VARCHAR NOT NULL, raw VARCHAR)"
        )
        _move_raw_tables(wh)

    # -- one file ------------------------------------------------------------------------------
    def ingest(self, wh: Warehouse, file: LedgerFile, ctx: RunContext) -> FileResult:
        table = self._table(file)
        staging = f"_stage_{file.id}"
        header, rejected = wh.stage_tsv(file.path, staging, numbered=False)  # lines are numbered only if a row misfits
        if self._next is not None and self._next.id != file.id:  # read the next file while this one is loaded
            wh.prefetch_tsv(self._next.path)
            self._reading = wh
        try:
            sql_tables.check_header(table, header, file.path)
            columns = self._columns(table, header)
            typed = {src: dst for src, dst in columns.items() if sql_tables.column_type(table, dst) != "VARCHAR"}
            staged, texts, found = self._profile(wh, staging, header, list(typed))
            course_id = self._course_id(wh, file, found)
            key = courses.course_key(course_id)
            if key is None:
                raise IngestError(f"{file.path}: cannot tell the course from the file name or a course_id column")
            site = file.site or "prod"
            loaded = wh.query(
                "SELECT package_date FROM db_state_loads WHERE course_key = ? AND site = ? AND table_name = ?", [key, site, table]
            )
            if loaded and loaded[0][0] and file.package_date and file.package_date < loaded[0][0]:
                return FileResult(0, 0, f"package {file.package_date} is older than the loaded {loaded[0][0]}; not loaded", course_id)
            self._ensure_table(wh, table, columns)
            wh.execute("DELETE FROM db_state_quarantine WHERE file_id = ?", [file.id])
            wh.executemany(
                "INSERT INTO db_state_quarantine (file_id, path, line, reason, raw) VALUES (?, ?, ?, ?, ?)",
                [[file.id, str(file.path), line, reason, raw] for line, reason, raw in rejected],
            )
            q = wh.quote
            raw = raw_table(wh, table)
            wh.execute(f"DELETE FROM {raw} WHERE course_key = ? AND site = ?", [key, site])
            targets = list(columns.values()) + ["course_key", "site", "package_date", "file_id"]
            values = [self._cast(wh, table, src, dst) for src, dst in columns.items()] + ["?", "?", "?", "?"]
            params: list[object] = [key, site, file.package_date, file.id]
            if "course_id" in columns.values():
                # rows with an empty course_id (org-level roles, say) belong to the file's course
                at = list(columns.values()).index("course_id")
                values[at] = f"coalesce(NULLIF({values[at]}, ''), ?)"
                params.insert(0, course_id)
            else:
                targets.append("course_id")
                values.append("?")
                params.append(course_id)
            insert = f"INSERT INTO {raw} ({', '.join(q(t) for t in targets)}) SELECT {', '.join(values)} FROM {q(staging)}"
            misfits = 0
            if not self._insert_all(wh, insert, params, table, dict(zip(typed.values(), texts, strict=True)), (key, site, file.id)):
                # some value did not fit its type: load again without the rows holding one, and quarantine those
                wh.execute(f"DELETE FROM {raw} WHERE course_key = ? AND site = ? AND file_id = ?", [key, site, file.id])
                wh.drop_staged(staging)
                wh.stage_tsv(file.path, staging)
                bad = self._bad_rows_sql(wh, table, columns)
                misfits = self._quarantine(wh, file, staging, header, bad)
                wh.execute(f"{insert} WHERE NOT ({bad})", params)
            rows = staged - misfits
            ctx.wrote(rows)
            self._record_load(wh, key, site, table, course_id, file, rows)
            ctx.touch(key)
            return FileResult(rows, len(rejected) + misfits, None, course_id)
        finally:
            wh.drop_staged(staging)

    @staticmethod
    def _profile(wh: Warehouse, staging: str, header: list[str], typed: list[str]) -> tuple[int, list[int], str | None]:
        """One scan of the staged rows: how many, how many non-empty texts each typed column has, and
        the most frequent course_id when the file has that column."""
        q = wh.quote
        course = q("course_id") if "course_id" in header else "NULL"
        texts = "".join(f", count(NULLIF({q(src)}, ''))" for src in typed)
        groups = wh.query(f"SELECT {course}, count(*){texts} FROM {q(staging)} GROUP BY 1")
        named = [g for g in groups if g[0]]
        return (
            sum(int(g[1]) for g in groups),
            [sum(int(g[i]) for g in groups) for i in range(2, 2 + len(typed))],
            str(max(named, key=lambda g: g[1])[0]) if named else None,
        )

    def _table(self, file: LedgerFile) -> str:
        name = file.table_name or sql_tables.table_from_shortened_name(file.path.name)
        if not name:
            raise IngestError(f"{file.path}: the file name was shortened by edX and no known table name is left in it")
        return sql_tables.safe_table_name(name, file.path)

    def _course_id(self, wh: Warehouse, file: LedgerFile, found: str | None) -> str | None:
        """The course: from the file's own course_id column when it has one (`found`, its most frequent
        value: it settles ambiguous names)."""
        if (
            found
            and courses.parse(found)
            and (file.course_id is None or courses.course_key(found) == file.course_key or _same_file_form(found, file))
        ):
            return found
        if file.course_id:
            return file.course_id
        # an ambiguous name with no course_id column: look for the course in other files of the package
        stem = file.path.name.split(f"-{file.table_name}-")[0] if file.table_name else None
        if stem:
            for (candidate,) in wh.query("SELECT DISTINCT course_id FROM course_ids"):
                if courses.matches_file_form(candidate, stem):
                    return str(candidate)
            for (candidate,) in wh.query(
                "SELECT DISTINCT course_id FROM ingest_files WHERE course_id IS NOT NULL AND data_path = ? AND package_date IS NOT DISTINCT FROM ?",
                [str(file.data_path), file.package_date],
            ):
                if courses.matches_file_form(candidate, stem):
                    return str(candidate)
        return None

    @staticmethod
    def _columns(table: str, header: list[str]) -> dict[str, str]:
        """Header column -> warehouse column (older names renamed, provenance names not overwritten)."""
        renamed = sql_tables.RENAMED.get(table, {})
        result: dict[str, str] = {}
        for name in header:
            target = renamed.get(name, name).lower()
            if target in ("course_key", "site", "package_date", "file_id"):
                target = f"edx_{target}"
            if target in result.values():
                continue
            result[name] = target
        return result

    @staticmethod
    def _ensure_table(wh: Warehouse, table: str, columns: dict[str, str]) -> None:
        """Create the raw table, or add the columns a newer export brings (raw tables evolve)."""
        q, raw = wh.quote, raw_table(wh, table)
        if not wh.table_exists(table, schema=wh.raw_schema):
            cols = dict(sql_tables.PROVENANCE)
            for target in columns.values():
                cols[target] = sql_tables.column_type(table, target)
            wh.execute(f"CREATE TABLE {raw} ({', '.join(f'{q(n)} {t}' for n, t in cols.items())})")
            return
        existing = set(wh.columns(table, schema=wh.raw_schema))
        for target in columns.values():
            if target not in existing:
                wh.execute(f"ALTER TABLE {raw} ADD COLUMN {q(target)} {sql_tables.column_type(table, target)}")

    @staticmethod
    def _cast(wh: Warehouse, table: str, source: str, target: str) -> str:
        sql_type = sql_tables.column_type(table, target)
        col = wh.quote(source)
        if sql_type == "VARCHAR":
            return col
        return wh.try_cast_sql(f"NULLIF({col}, '')", sql_type)

    @classmethod
    def _bad_rows_sql(cls, wh: Warehouse, table: str, columns: dict[str, str]) -> str:
        """A condition true for rows whose typed values do not parse (they go to quarantine)."""
        checks = [
            f"({wh.quote(src)} IS NOT NULL AND {wh.quote(src)} <> '' AND {cls._cast(wh, table, src, dst)} IS NULL)"
            for src, dst in columns.items()
            if sql_tables.column_type(table, dst) != "VARCHAR"
        ]
        return " OR ".join(checks) or "false"

    @staticmethod
    def _insert_all(
        wh: Warehouse, insert: str, params: list[object], table: str, texts: dict[str, int], rows_of: tuple[str, str, int]
    ) -> bool:
        """Insert every staged row; True when every typed value fit its type.

        The casts are evaluated once, here: a value that does not fit is NULL in the table, so all fit
        exactly when each typed column (`texts`: its non-empty texts in the file) got a value per text.
        """
        q = wh.quote
        texts = {column: n for column, n in texts.items() if n}  # a column with no text has nothing to misfit
        if not texts:
            wh.execute(insert, params)
            return True
        counts = ", ".join(f"count({q(c)})" for c in texts)
        if not wh.capabilities.prunes_by_min_max:  # counted as the insert returns them: no scan of the table
            got = wh.query(f"WITH ins AS ({insert} RETURNING {', '.join(q(c) for c in texts)}) SELECT {counts} FROM ins", params)[0]
        else:
            wh.execute(insert, params)
            # the file's rows were appended together: min/max statistics skip the rest of the table
            got = wh.query(f"SELECT {counts} FROM {raw_table(wh, table)} WHERE course_key = ? AND site = ? AND file_id = ?", list(rows_of))[
                0
            ]
        return [int(n) for n in got] == list(texts.values())

    @staticmethod
    def _quarantine(wh: Warehouse, file: LedgerFile, staging: str, header: list[str], bad: str) -> int:
        """Quarantine the rows holding a value that does not fit its column type; returns how many."""
        q = wh.quote
        wh.execute(
            f"INSERT INTO db_state_quarantine (file_id, path, line, reason, raw) SELECT ?, ?, _line, "
            f"'a value does not fit its column type', concat_ws(chr(9), {', '.join(f'coalesce({q(c)}, {chr(39)}NULL{chr(39)})' for c in header)}) "
            f"FROM {q(staging)} WHERE {bad}",
            [file.id, str(file.path)],
        )
        return int(
            wh.scalar(
                "SELECT count(*) FROM db_state_quarantine WHERE file_id = ? AND reason = 'a value does not fit its column type'", [file.id]
            )
        )

    @staticmethod
    def _record_load(wh: Warehouse, key: str, site: str, table: str, course_id: str | None, file: LedgerFile, rows: int) -> None:
        wh.execute("DELETE FROM db_state_loads WHERE course_key = ? AND site = ? AND table_name = ?", [key, site, table])
        one_form = _one_form(wh, key, course_id)
        wh.execute(
            "INSERT INTO db_state_loads (course_key, site, table_name, course_id, package_date, file_id, rows, empty, loaded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, false, ?)",
            [key, site, table, one_form, file.package_date, file.id, rows, utcnow()],
        )
        # a table loaded before the course's new form was seen (a dump with no course_id column) takes it now
        wh.execute("UPDATE db_state_loads SET course_id = ? WHERE course_key = ? AND course_id <> ?", [one_form, key, one_form])

    # -- after the run's files -----------------------------------------------------------------
    def finish(self, wh: Warehouse, files: list[LedgerFile], ctx: RunContext) -> None:
        """Empty, for each course loaded from a newer package, the tables that package has no file for."""
        packages = {
            (key, site, date)
            for key, site, date in wh.query(
                "SELECT course_key, site, package_date FROM ingest_files WHERE service = ? AND state = 'done' AND run_id = ? "
                "AND package_date IS NOT NULL AND course_key IS NOT NULL",
                [self.name, ctx.run_id],
            )
        }
        for key, site, date in packages:
            stale = wh.query(
                "SELECT table_name, package_date FROM db_state_loads WHERE course_key = ? AND site = ? AND package_date < ? AND NOT empty",
                [key, site, date],
            )
            for table, _old in stale:
                wh.execute(f"DELETE FROM {raw_table(wh, table)} WHERE course_key = ? AND site = ?", [key, site])
                wh.execute(
                    "UPDATE db_state_loads SET empty = true, rows = 0, package_date = ?, file_id = NULL, loaded_at = ? "
                    "WHERE course_key = ? AND site = ? AND table_name = ?",
                    [date, utcnow(), key, site, table],
                )
                ctx.touch(key)


def _one_form(wh: Warehouse, key: str, course_id: str | None) -> str | None:
    """db_state_loads names a course in one form for all its tables: the new one (`course-v1:`, `ccx-v1:`)
    when the course is known by it (this file's course_id column, or any id recorded in course_ids),
    else `org/course/run` (a file name's form, and the id of courses from before `course-v1:`)."""
    parsed = courses.parse(course_id)
    if parsed is None or not course_id:
        return course_id
    if parsed.ccx or course_id.startswith("course-v1:"):
        return parsed.new
    forms = {form for (form,) in wh.query("SELECT DISTINCT form FROM course_ids WHERE course_key = ?", [key])}
    return parsed.new if forms & {"new", "ccx"} else parsed.old


def _same_file_form(course_id: str, file: LedgerFile) -> bool:
    stem = file.path.name.split(f"-{file.table_name}-")[0] if file.table_name else ""
    return courses.matches_file_form(course_id, stem)


# Optimus's own tables besides the services' declared ones (the framework's, warehouse/schema.py).
_FRAMEWORK_TABLES = {"schema_info", "ingest_files", "ingest_skipped", "service_runs", "service_run_changes", "course_ids"}


def _move_raw_tables(wh: Warehouse) -> None:
    """Warehouses written before the raw schema kept the raw tables beside Optimus's: move each
    (once; a table named after one of Optimus's own stays, and its dumps load again, into the raw
    schema). One SQL on both engines: copy, then drop, in one transaction."""
    own = _FRAMEWORK_TABLES | {t for cls in REGISTRY.values() for t in cls.writes}
    for (table,) in wh.query("SELECT DISTINCT table_name FROM db_state_loads ORDER BY 1"):
        if not wh.table_exists(table) or wh.table_exists(table, schema=wh.raw_schema):
            continue
        with wh.transaction():
            if table in own:
                wh.execute("DELETE FROM db_state_loads WHERE table_name = ?", [table])
                wh.execute("UPDATE ingest_files SET state = 'queued' WHERE service = ? AND table_name = ?", [DatabaseState.name, table])
                continue
            wh.execute(f"CREATE TABLE {raw_table(wh, table)} AS SELECT * FROM {wh.quote(table)}")
            wh.execute(f"DROP TABLE {wh.quote(table)}")
