"""What Optimus knows of the edX `.sql` (TSV) tables: the typed columns and old column names.

Columns not listed here are kept as text; tables not listed are loaded generically by header.
"""
from __future__ import annotations

ID = "BIGINT"
TS = "TIMESTAMP"
BOOL = "BOOLEAN"
NUM = "DOUBLE"
INT = "INTEGER"

COLUMN_TYPES: dict[str, dict[str, str]] = {
    "auth_user": {"id": ID, "is_staff": BOOL, "is_active": BOOL, "is_superuser": BOOL, "last_login": TS, "date_joined": TS},
    "auth_userprofile": {"id": ID, "user_id": ID, "year_of_birth": INT, "profile_image_uploaded_at": TS},
    "student_courseenrollment": {"id": ID, "user_id": ID, "created": TS, "is_active": BOOL},
    "certificates_generatedcertificate": {
        "id": ID, "user_id": ID, "grade": NUM, "distinction": BOOL, "created_date": TS, "modified_date": TS,
    },
    "courseware_studentmodule": {"id": ID, "student_id": ID, "grade": NUM, "max_grade": NUM, "created": TS, "modified": TS},
    "user_id_map": {"user_id": ID},
    "student_courseaccessrole": {"id": ID, "user_id": ID},
    "django_comment_client_role_users": {"user_id": ID},
    "grades_persistentcoursegrade": {"id": ID, "user_id": ID, "percent_grade": NUM, "passed_timestamp": TS, "created": TS, "modified": TS},
    "grades_persistentsubsectiongrade": {
        "id": ID, "user_id": ID, "earned_all": NUM, "possible_all": NUM, "earned_graded": NUM, "possible_graded": NUM,
        "first_attempted": TS, "created": TS, "modified": TS,
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

KNOWN_TABLES = sorted(COLUMN_TYPES, key=len, reverse=True)

# Columns every Database State table gets, saying where each row came from.
PROVENANCE = {"course_id": "VARCHAR", "course_key": "VARCHAR", "site": "VARCHAR", "package_date": "DATE", "file_id": "BIGINT"}


def table_from_shortened_name(name: str) -> str | None:
    """The table named in a `-{md5}`-shortened file name, when its table part survived the cut."""
    return next((t for t in KNOWN_TABLES if f"-{t}-" in name or name.endswith(f"-{t}")), None)


def column_type(table: str, column: str) -> str:
    return COLUMN_TYPES.get(table, {}).get(column, "VARCHAR")


def safe_table_name(name: str) -> str:
    """edX table names are lower-case words and underscores; anything else is refused."""
    cleaned = name.strip().lower()
    if not cleaned or not all(c.isalnum() or c == "_" for c in cleaned) or cleaned[0].isdigit():
        raise ValueError(f"not a table name: {name!r}")
    return cleaned
