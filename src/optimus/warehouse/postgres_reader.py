"""The PostgreSQL reader role: the login untrusted SQL (the API's /sql, `optimus sql`) and every
read view run as, so that PostgreSQL's own privileges keep them inside the warehouse.

The role may only SELECT the Optimus schema and the raw edX schema (USAGE + SELECT, and default
privileges so tables made later are readable too); it is no superuser, makes no roles or
databases, is a member of no role (so not of pg_read_server_files and the like) and owns nothing.
Superuser-only functions (pg_read_file, lo_import, COPY TO PROGRAM, ...) are then simply not
available to it. Never SET ROLE: a query could set it back with set_config.

Roles are cluster-wide, so each database and schema has its own (`reader_role_name`). Optimus
creates it when its writer may create roles, with a random password kept in the table
`<schema>_private.reader_login`: that schema is the writer's and granted to nobody, so only the
writer (and superusers) can read the password, from any machine that has the writer's login, and
no file has to be copied to the host that serves the API. Otherwise a DBA creates it with the
statement `dba_statement` prints, and `warehouse_reader_url` says how to log in as it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from optimus.errors import WarehouseError

READER_PREFIX = "optimus_reader_"
_MAX_IDENTIFIER = 63  # PostgreSQL cuts longer names (NAMEDATALEN - 1 bytes)
# roles that reach the server's files, programs or every table: a reader must be in none of them
_POWERFUL_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_signal_backend",
)


def reader_role_name(database: str, schema: str) -> str:
    """The reader role of one database and schema: readable, ASCII, unique (a hash of both names
    ends it, so names cut to fit 63 bytes never collide)."""
    digest = hashlib.sha256(f"{database}\x00{schema}".encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "_", f"{database}_{schema}".lower()).strip("_")
    room = _MAX_IDENTIFIER - len(READER_PREFIX) - len(digest) - 1
    return f"{READER_PREFIX}{slug[:room].rstrip('_')}_{digest}"


def private_schema_for(schema: str) -> str:
    """Where the reader's password is kept: a schema of the writer's, granted to no one."""
    return f"{schema}_private"


@dataclass(frozen=True)
class ReaderLogin:
    """How to log in as the reader: a libpq URL, and what replaces its user and password."""

    url: str
    overrides: dict[str, str] = field(default_factory=dict)

    def connect(self, **options: object) -> psycopg.Connection:
        return psycopg.connect(self.url, **self.overrides, **options)  # type: ignore[arg-type]


def _comment(database: str, schemas: tuple[str, ...]) -> str:
    """The role's comment: what it is for (for a DBA) and which database it belongs to (for clean-up)."""
    names = " and ".join(f'"{s}"' for s in schemas)
    return f'Optimus reader: SELECT on schemas {names} of database "{database}" (made for the API and optimus sql)'


def dba_statement(role: str, database: str, schemas: tuple[str, ...]) -> str:
    """What a DBA runs when Optimus may not create the role itself (shown in the error and in docs/postgresql.md)."""
    return f"CREATE ROLE \"{role}\" LOGIN NOINHERIT PASSWORD '<password>';\nCOMMENT ON ROLE \"{role}\" IS '{_comment(database, schemas)}';"


def _lock_key(role: str) -> int:
    return 0x0F7200000000 + zlib.crc32(f"optimus-reader:{role}".encode())


def may_create_roles(con: psycopg.Connection) -> bool:
    row = con.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def _role_exists(con: psycopg.Connection, role: str) -> bool:
    return con.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [role]).fetchone()[0] > 0  # type: ignore[index]


def _stored_password(con: psycopg.Connection, schema: str, role: str) -> str | None:
    table = f"{sql.Identifier(private_schema_for(schema)).as_string(con)}.reader_login"
    if con.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None:  # type: ignore[index]
        return None
    try:
        row = con.execute(f"SELECT password FROM {table} WHERE role = %s", [role]).fetchone()
    except psycopg.errors.InsufficientPrivilege:  # another role's warehouse: not ours to read
        return None
    return row[0] if row else None


def ensure_reader(
    con: psycopg.Connection, schema: str, raw_schema: str, configured_role: str | None = None, configured_password: str | None = None
) -> tuple[str, str | None] | None:
    """Make the reader role when missing (if this login may make roles) and grant it SELECT on the
    two schemas (creating the raw schema first). Runs in one transaction under a lock of its own,
    so a writer and a reader starting together do not collide.

    :param con: an autocommit connection as the writer (the owner of the schemas).
    :param configured_role: the user of `warehouse_reader_url`, when one is set (Optimus manages the role otherwise).
    Returns (role, password for a managed role), or None when the role does not exist and may not be made.
    """
    database = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    role = configured_role or reader_role_name(database, schema)
    managed = configured_role is None
    ident = sql.Identifier
    q_role = ident(role)
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(role)])
        for name in (schema, raw_schema):
            con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(name)))
        password = _stored_password(con, schema, role) if managed else configured_password
        exists = _role_exists(con, role)
        if not exists or (managed and password is None):
            if not may_create_roles(con):
                return None
            if managed:
                password = secrets.token_urlsafe(32)
                private = ident(private_schema_for(schema))
                con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(private))
                con.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(private))
                con.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.reader_login (role TEXT PRIMARY KEY, password TEXT NOT NULL, "
                        "created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    ).format(private)
                )
                con.execute(sql.SQL("REVOKE ALL ON {}.reader_login FROM PUBLIC").format(private))
                con.execute(
                    sql.SQL(
                        "INSERT INTO {}.reader_login (role, password) VALUES (%s, %s) "
                        "ON CONFLICT (role) DO UPDATE SET password = excluded.password, created_at = now()"
                    ).format(private),
                    [role, password],
                )
            secret = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password else sql.SQL("")
            verb = "ALTER" if exists else "CREATE"
            options = (
                sql.SQL(" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS") if not exists else sql.SQL("")
            )
            con.execute(sql.SQL(verb + " ROLE {}").format(q_role) + options + secret)
            con.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(q_role, sql.Literal(_comment(database, (schema, raw_schema)))))
        for name in (schema, raw_schema):
            con.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(name), q_role))
            con.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(ident(name), q_role))
            con.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(ident(name), q_role))
    return role, password


def _with_login(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"postgresql://{user}:<password>@{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def managed_login(con: psycopg.Connection, url: str, schema: str, raw_schema: str) -> ReaderLogin:
    """The login of the reader Optimus manages, read (or made) with the writer's connection `con`.
    Raises WarehouseError with the statement a DBA runs when the role is missing and may not be made."""
    database = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    role = reader_role_name(database, schema)
    password = _stored_password(con, schema, role)
    if password is None or not _role_exists(con, role):
        made = ensure_reader(con, schema, raw_schema)
        if made is None:
            user = con.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
            raise WarehouseError(
                f"PostgreSQL warehouse: the SQL endpoint and read views log in as a reader role that may only SELECT "
                f"the Optimus schemas, and {user!r} may not create roles. Ask a database administrator to run\n\n"
                f"{dba_statement(role, database, (schema, raw_schema))}\n\n"
                f"then set warehouse_reader_url = \"{_with_login(url, role)}\" and run 'optimus ingest' once "
                "(the writer grants the role SELECT on its schemas). See docs/postgresql.md."
            )
        password = made[1]
    return ReaderLogin(url, {"user": role, "password": password or ""})


def check_reader(con: psycopg.Connection, schema: str, raw_schema: str, where: str) -> None:
    """Refuse a reader login that could do more than read: the point of the role is what it may not do."""
    row = con.execute(
        "SELECT current_user, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls OR r.rolreplication, "
        "       has_database_privilege(current_database(), 'CREATE'), "
        "       EXISTS (SELECT 1 FROM unnest(%s::text[]) p(role) WHERE to_regrole(p.role) IS NOT NULL AND pg_has_role(p.role, 'USAGE')), "
        "       EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = ANY(%s) AND has_schema_privilege(n.oid, 'CREATE')), "
        "       EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = %s AND has_schema_privilege(n.oid, 'USAGE')), "
        "       EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s) "
        "               AND c.relkind IN ('r', 'p') AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE') "
        "               OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))) "
        "FROM pg_roles r WHERE r.rolname = current_user",
        [list(_POWERFUL_ROLES), [schema, raw_schema], private_schema_for(schema), [schema, raw_schema]],
    ).fetchone()
    assert row is not None
    user, powerful, create_db, member, create_schema, private, write = row
    reasons = [
        text
        for flag, text in (
            (powerful, "is a superuser or may create roles or databases, bypass row security or replicate"),
            (create_db, "may create schemas in the database"),
            (member, f"is a member of a role that reaches the server's files or every table ({', '.join(_POWERFUL_ROLES)})"),
            (create_schema, "may create objects in (or owns) an Optimus schema"),
            (private, f"may use {private_schema_for(schema)} (where the reader's password is kept)"),
            (write, "may write an Optimus table"),
        )
        if flag
    ]
    if reasons:
        raise WarehouseError(
            f"{where} logs in as {user!r}, which {'; '.join(reasons)}: the reader must only SELECT the "
            "Optimus schemas (see docs/postgresql.md for the statement that makes such a role)"
        )
