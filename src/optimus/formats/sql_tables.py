"""What Optimus knows of the edX `.sql` (TSV) tables: the format, the typed columns and old column names.

The format's rules live here once (REFERENCE §3.2): the header row (`read_header`), the field
separator, the `NULL` token and the backslash escapes, with a plain-Python reference decoder of a
field (`decode_field`) and the SQL decoding them (`decode_escapes_sql`), which both warehouse
backends' `stage_tsv` use. Columns not listed here are kept as text; tables not listed are loaded
generically by header. Pure: the only file it reads is a dump's first line.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import TYPE_CHECKING

from optimus.errors import IngestError, UnsafeName

if TYPE_CHECKING:
    from optimus.warehouse.dialects.base import Dialect

# -- the format ------------------------------------------------------------------------------------
FIELD_SEPARATOR = "\t"
# A field that is exactly this is SQL NULL (edX writes NULL so; a text "NULL" cannot be told from it).
NULL_TOKEN = "NULL"
# `\` + a letter stands for a character; `\\` for one backslash. Any other backslash is kept as written.
ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
# A private-use character stands in for an escaped backslash while the other escapes are decoded.
_BACKSLASH = "\ue000"

ID = "BIGINT"
TS = "TIMESTAMP"
BOOL = "BOOLEAN"
NUM = "DOUBLE PRECISION"
INT = "INTEGER"

COLUMN_TYPES: dict[str, dict[str, str]] = {
    "auth_user": {"id": ID, "is_staff": BOOL, "is_active": BOOL, "is_superuser": BOOL, "last_login": TS, "date_joined": TS},
    "auth_userprofile": {"id": ID, "user_id": ID, "year_of_birth": INT, "profile_image_uploaded_at": TS},
    "student_courseenrollment": {"id": ID, "user_id": ID, "created": TS, "is_active": BOOL},
    "certificates_generatedcertificate": {
        "id": ID,
        "user_id": ID,
        "grade": NUM,
        "distinction": BOOL,
        "created_date": TS,
        "modified_date": TS,
    },
    "courseware_studentmodule": {"id": ID, "student_id": ID, "grade": NUM, "max_grade": NUM, "created": TS, "modified": TS},
    "user_id_map": {"user_id": ID},
    "student_courseaccessrole": {"id": ID, "user_id": ID},
    "django_comment_client_role_users": {"user_id": ID},
    "grades_persistentcoursegrade": {"id": ID, "user_id": ID, "percent_grade": NUM, "passed_timestamp": TS, "created": TS, "modified": TS},
    "grades_persistentsubsectiongrade": {
        "id": ID,
        "user_id": ID,
        "earned_all": NUM,
        "possible_all": NUM,
        "earned_graded": NUM,
        "possible_graded": NUM,
        "first_attempted": TS,
        "created": TS,
        "modified": TS,
    },
    "student_languageproficiency": {"id": ID, "user_profile_id": ID},
    "user_api_usercoursetag": {"user_id": ID},
    "teams_membership": {"id": ID, "user_id": ID, "team_id": ID, "date_joined": TS, "last_activity_at": TS},
    "student_anonymoususerid": {"id": ID, "user_id": ID},
    "course_groups_cohortmembership": {"id": ID, "user_id": ID, "course_user_group_id": ID},
    "credit_crediteligibility": {"id": ID, "created": TS, "modified": TS},
    "verify_student_verificationstatus": {"id": ID, "user_id": ID, "timestamp": TS},
    "wiki_article": {"id": ID, "created": TS, "modified": TS},
    "wiki_articlerevision": {"id": ID, "article_id": ID, "user_id": ID, "created": TS, "modified": TS},
}

# Older exports named some columns differently; they are loaded under today's name.
RENAMED: dict[str, dict[str, str]] = {
    "user_id_map": {"id": "user_id"},
}

# The columns a dump of a known table must have in its header: what identifies its rows (REFERENCE
# §3.2). A header without them is not this table's (or is a data row); other columns may come and go.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "auth_user": ("id", "username"),
    "auth_userprofile": ("user_id",),
    "student_courseenrollment": ("user_id", "course_id"),
    "certificates_generatedcertificate": ("user_id", "course_id"),
    "courseware_studentmodule": ("student_id", "module_id"),
    "user_id_map": ("hash_id", "user_id"),
    "student_courseaccessrole": ("user_id", "role"),
    "django_comment_client_role_users": ("user_id", "name"),
    "grades_persistentcoursegrade": ("user_id", "course_id"),
}

# A table name from a file name: a lower-case SQL identifier (every edX table name has this shape).
_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
# A column name in a header: an SQL identifier. A value of a data row (a number, an e-mail, a name
# with a space, a date) is not one, so a dump without its header is refused instead of loaded.
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_HEADER = 1 << 20  # bytes: a header is a line of names, never megabytes

KNOWN_TABLES = sorted(COLUMN_TYPES, key=len, reverse=True)

# Columns every Database State table gets, saying where each row came from.
PROVENANCE = {"course_id": "VARCHAR", "course_key": "VARCHAR", "site": "VARCHAR", "package_date": "DATE", "file_id": "BIGINT"}


def table_from_shortened_name(name: str) -> str | None:
    """The table named in a `-{md5}`-shortened file name, when its table part survived the cut."""
    return next((t for t in KNOWN_TABLES if f"-{t}-" in name or name.endswith(f"-{t}")), None)


def column_type(table: str, column: str) -> str:
    return COLUMN_TYPES.get(table, {}).get(column, "VARCHAR")


def safe_table_name(name: str, where: object) -> str:
    """The table a file name names, refused (UnsafeName naming `where`) unless it is a lower-case
    SQL identifier, as every edX table name is."""
    if not isinstance(name, str) or not _TABLE_NAME.match(name) or len(name) > 63:  # 63: PostgreSQL's identifier limit
        raise UnsafeName(
            f"{where}: unsafe table name {name!r}: a table name is a lower-case identifier (a-z, 0-9, _) of at most 63 characters"
        )
    return name


def read_header(path: Path) -> list[str]:
    """The column names in the first line of an edX TSV dump (gzipped or not), which must be its header.

    Every name must be an identifier, so a dump whose first row is data fails here (naming the file)
    instead of making its values column names; a repeated name gets a `_` per repeat.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            line = fh.readline(_MAX_HEADER + 1)
    except (OSError, EOFError) as exc:
        raise IngestError(f"{path}: cannot read the header row: {exc}") from None
    if len(line) > _MAX_HEADER:
        raise IngestError(f"{path}: the first line is longer than {_MAX_HEADER} bytes; it is not a header row of column names")
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    if not text.strip():
        raise IngestError(f"{path}: empty file, no header row")
    names: list[str] = []
    for i, raw in enumerate(text.split("\t"), start=1):
        name = raw.strip()
        if not _COLUMN_NAME.match(name):
            raise UnsafeName(
                f"{path}: line 1 is not a header row: field {i} ({name[:60]!r}) is not a column name (an identifier: "
                "letters, digits, _); a dump must start with its header, values never become columns"
            )
        while name in names:
            name += "_"
        names.append(name)
    return names


def check_header(table: str, columns: list[str], path: Path) -> None:
    """Refuse a dump of a known table whose header lacks the table's key columns (after old names
    are renamed); new columns are welcome (newer exports)."""
    renamed = RENAMED.get(table, {})
    have = {renamed.get(c, c).lower() for c in columns}
    missing = [c for c in KEY_COLUMNS.get(table, ()) if c not in have]
    if missing:
        raise IngestError(
            f"{path}: the header row has no {', '.join(missing)} column; a {table} dump's header names "
            f"{', '.join(KEY_COLUMNS[table])} (is line 1 a header?)"
        )


def decode_field(field: str) -> str | None:
    """The reference for what a field of a dump holds: NULL, or its text with the escapes decoded."""
    return None if field == NULL_TOKEN else decode_escapes(field)


def decode_escapes(text: str) -> str:
    """The reference decoding of the escapes: one pass, left to right (decode_escapes_sql must give
    the same for every text)."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1 : i + 2] in ESCAPES:
            out.append(ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def decode_escapes_sql(column: str, sql: Dialect) -> str:
    """SQL decoding the escapes of one text column, as decode_escapes does (NULL_TOKEN is the loader's:
    such a field is NULL already), written once for every engine (`sql`: the warehouse's dialect, for what engines spell otherwise).

    Cheap for values without a backslash (one test); a value whose only escapes are `\\\\` (JSON
    state, say) takes one replace instead of five: with no other escape (nor the stand-in) in it,
    the others change nothing. A value that holds the stand-in itself (found by fuzzing) is split
    at each `\\\\` instead (slower, rare).
    """
    letters = [(f"\\{letter}", char) for letter, char in ESCAPES.items() if letter != "\\"]

    def has(text: str) -> str:
        return sql.contains(column, text)

    def unescape(value: str) -> str:  # the letter escapes, in a value that holds no escaped backslash
        for escaped, char in letters:
            value = f"replace({value}, {sql.literal(escaped)}, {sql.char(ord(char))})"
        return value

    # literals through the dialect: an engine may read backslash escapes in them (Spark)
    one, two, stand_in = sql.literal("\\"), sql.literal("\\\\"), sql.literal(_BACKSLASH)
    stood_in = unescape(f"replace({column}, {two}, {stand_in})")
    fast = f"replace({stood_in}, {stand_in}, {one})"
    split = sql.split_map_join(column, "\\\\", unescape, "\\")
    others = " OR ".join(has(text) for text in [*(e for e, _c in letters), _BACKSLASH])
    return (
        f"CASE WHEN {has(chr(92))} THEN (CASE WHEN {has(_BACKSLASH)} THEN {split} "
        f"WHEN {others} THEN {fast} ELSE replace({column}, {two}, {one}) END) ELSE {column} END"
    )
