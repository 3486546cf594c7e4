"""UserInfoCombo: edx2bigquery's `user_info_combo`, one row per learner and course joining the
package's auth_user, auth_userprofile, student_courseenrollment, certificates_generatedcertificate
and user_id_map (read from the raw schema), so that one table answers who a learner is.

Every column's rule, with the reference it copies, is in docs/tables/user_info_combo.md.
"""

from __future__ import annotations

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import source
from optimus.warehouse.base import Warehouse

# edx2bigquery's make_user_info_combo.process_file: the fields copied from each table (prefixed)
USER_FIELDS = {"username": "VARCHAR", "email": "VARCHAR", "is_staff": "INTEGER", "last_login": "TIMESTAMP", "date_joined": "TIMESTAMP"}
PROFILE_FIELDS = {
    "name": "VARCHAR",
    "language": "VARCHAR",
    "location": "VARCHAR",
    "meta": "VARCHAR",
    "courseware": "VARCHAR",
    "gender": "VARCHAR",
    "mailing_address": "VARCHAR",
    "year_of_birth": "INTEGER",
    "level_of_education": "VARCHAR",
    "goals": "VARCHAR",
    "allow_certificate": "INTEGER",
    "country": "VARCHAR",
    "city": "VARCHAR",
}
ENROLLMENT_FIELDS = {"course_id": "VARCHAR", "created": "TIMESTAMP", "is_active": "INTEGER", "mode": "VARCHAR"}
CERTIFICATE_FIELDS = {
    "id": "BIGINT",
    "user_id": "BIGINT",
    "download_url": "VARCHAR",
    "grade": "DOUBLE PRECISION",
    "course_id": "VARCHAR",
    "key": "VARCHAR",
    "distinction": "INTEGER",
    "status": "VARCHAR",
    "verify_uuid": "VARCHAR",
    "download_uuid": "VARCHAR",
    "name": "VARCHAR",
    "created_date": "TIMESTAMP",
    "modified_date": "TIMESTAMP",
    "error_reason": "VARCHAR",
    "mode": "VARCHAR",
}

COLUMNS: dict[str, str] = {
    "course_key": "VARCHAR",
    "user_id": "BIGINT",
    **USER_FIELDS,
    **{f"profile_{c}": t for c, t in PROFILE_FIELDS.items()},
    **{f"enrollment_{c}": t for c, t in ENROLLMENT_FIELDS.items()},
    **{f"certificate_{c}": t for c, t in CERTIFICATE_FIELDS.items()},
    "id_map_hash_id": "VARCHAR",
    "edxinstructordash_Grade": "DOUBLE PRECISION",
    "edxinstructordash_Grade_timestamp": "VARCHAR",
    "y1_anomalous": "INTEGER",
}


def _latest(wh: Warehouse, table: str) -> str:
    """One row per course and learner of a raw table: the one with the highest id (edx2bigquery
    reads the dump in order and the last line of a user wins; dumps are in id order)."""
    return (
        f"(SELECT * FROM (SELECT x.*, row_number() OVER (PARTITION BY course_key, user_id ORDER BY id DESC NULLS LAST) AS rn "
        f"FROM {source(wh, table)} x WHERE x.{IN_SCOPE} AND x.user_id IS NOT NULL) y WHERE rn = 1)"
    )


def _int_of_bool(expr: str) -> str:
    return f"CASE WHEN {expr} THEN 1 WHEN NOT {expr} THEN 0 END"


@register
class UserInfoCombo(CourseTables):
    name = "UserInfoCombo"
    needs = ("DatabaseState",)
    dictionary = "docs/tables/user_info_combo.md"
    rules_version = 1
    tables = (Table("user_info_combo", COLUMNS, personal=True, order_by=("course_key", "user_id")),)

    def build(self, wh: Warehouse, table: Table) -> None:
        q = wh.quote
        users = (
            f"(SELECT * FROM (SELECT x.*, row_number() OVER (PARTITION BY course_key, id ORDER BY username NULLS LAST) AS rn "
            f"FROM {source(wh, 'auth_user')} x WHERE x.{IN_SCOPE} AND x.id IS NOT NULL) y WHERE rn = 1)"
        )
        ids = (
            f"(SELECT course_key, user_id, min(hash_id) AS hash_id FROM {source(wh, 'user_id_map')} x "
            f"WHERE x.{IN_SCOPE} AND x.user_id IS NOT NULL GROUP BY course_key, user_id)"
        )
        base = " UNION ".join(
            [f"SELECT course_key, id AS user_id FROM {users} a0"]
            + [
                f"SELECT course_key, user_id FROM {_latest(wh, t)} b{i}"
                for i, t in enumerate(("auth_userprofile", "student_courseenrollment", "certificates_generatedcertificate"))
            ]
            + [f"SELECT course_key, user_id FROM {ids} b3"]
        )
        select = [
            "k.course_key",
            "k.user_id",
            "u.username",
            "u.email",
            _int_of_bool("u.is_staff"),
            "u.last_login",
            "u.date_joined",
            *[wh.sql.try_cast(f"p.{q(c)}", "INTEGER") if c == "allow_certificate" else f"p.{q(c)}" for c in PROFILE_FIELDS],
            # edx2bigquery sets a learner's missing enrollment_course_id to the course's
            f"coalesce(e.course_id, {course_id_sql('k.course_key')})",
            "e.created",
            _int_of_bool("e.is_active"),
            "e.mode",
            *[_int_of_bool("c.distinction") if f == "distinction" else f"c.{q(f)}" for f in CERTIFICATE_FIELDS],
            "m.hash_id",
            f"CAST(NULL AS {wh.sql.type_name('DOUBLE PRECISION')})",
            f"CAST(NULL AS {wh.sql.type_name('VARCHAR')})",
            "CAST(NULL AS INTEGER)",
        ]
        sql = (
            f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in table.columns)}) "
            f"SELECT {', '.join(select)} FROM ({base}) k "
            f"LEFT JOIN {users} u ON u.course_key = k.course_key AND u.id = k.user_id "
            f"LEFT JOIN {_latest(wh, 'auth_userprofile')} p ON p.course_key = k.course_key AND p.user_id = k.user_id "
            f"LEFT JOIN {_latest(wh, 'student_courseenrollment')} e ON e.course_key = k.course_key AND e.user_id = k.user_id "
            f"LEFT JOIN {_latest(wh, 'certificates_generatedcertificate')} c ON c.course_key = k.course_key AND c.user_id = k.user_id "
            f"LEFT JOIN {ids} m ON m.course_key = k.course_key AND m.user_id = k.user_id"
        )
        wh.execute(sql)
