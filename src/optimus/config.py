"""Settings: a TOML file, every key overridable by an OPTIMUS_<KEY> environment variable.

The file is flat (no sections) so that each key maps to exactly one variable. Relative paths
in the file are taken relative to the file's folder; in the environment, to the working folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from optimus.errors import ConfigError

CONFIG_ENV = "OPTIMUS_CONFIG"
DEFAULT_CONFIG_NAME = "optimus.toml"


@dataclass
class Settings:
    """Every setting, with its default. The docs for each live in DOCS below (and in the README)."""

    data_paths: list[Path] = field(default_factory=list)
    export_path: Path = Path("exports")
    www_path: Path = Path("www")
    warehouse: str = "duckdb:///optimus.duckdb"
    warehouse_schema: str = "optimus"
    warehouse_reader_url: str | None = None
    spark_master: str = "local[*]"
    memory_limit: str = "1GB"
    spill_path: Path | None = None
    threads: int = 0
    geoip_country_db: Path | None = None
    geoip_city_db: Path | None = None
    event_file_prefix: str = ""
    include_orgs: list[str] = field(default_factory=list)
    exclude_orgs: list[str] = field(default_factory=list)
    include_courses: list[str] = field(default_factory=list)
    exclude_courses: list[str] = field(default_factory=list)
    edge: bool = True
    ignored_services: list[str] = field(default_factory=list)
    rescan_interval: int = 300
    api_host: str = "127.0.0.1"
    api_port: int = 8850
    api_token: str | None = None
    require_token_for_all: bool = False
    api_max_body_bytes: int = 1024 * 1024
    email_crm_mode: str = "delta"
    time_gap_cutoff: int = 300
    max_archive_bytes: int = 20 * 1024**3
    max_line_bytes: int = 16 * 1024**2
    intake_path: Path | None = None
    gnupg_home: Path | None = None
    gnupg_passphrase_file: Path | None = None
    log_file: Path | None = None
    release_secret_file: Path | None = None

    source: str = "defaults"  # where the settings came from, for messages; not a key
    config_file: Path | None = None  # the config file read, if any (it may hold api_token); not a key
    origins: dict[str, str] = field(default_factory=dict)  # key -> the file or variable that set it
    config_chosen_by: str = ""  # how the config file was found: '--config', '$OPTIMUS_CONFIG' or './optimus.toml'; not a key

    def origin(self, key: str) -> str:
        """Where a key's value came from, for error messages."""
        return self.origins.get(key, "defaults")

    @property
    def warehouse_url(self) -> str:
        """The warehouse as a URL; a bare path means a DuckDB file."""
        if "://" in self.warehouse:
            return self.warehouse
        return f"duckdb:///{self.warehouse}"

    def warehouse_shown(self) -> str:
        """The warehouse for messages: a DuckDB file's full path, a server's URL without its password."""
        path = self.warehouse_path()
        if path is not None:
            return str(path.resolve())
        parts = urlsplit(self.warehouse_url)
        if parts.password is None:
            return self.warehouse_url
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()

    def describe(self) -> str:
        """Which config and warehouse a command uses (said on stderr by every command, and by `status`),
        so that a shell left with OPTIMUS_CONFIG set never writes into another warehouse unnoticed."""
        if self.config_file is not None:
            how = f" (from {self.config_chosen_by})" if self.config_chosen_by else ""
            config = f"{self.config_file}{how}"
        else:
            config = "none (no --config, $OPTIMUS_CONFIG or ./optimus.toml: defaults)"
        variables = [s for s in self.source.split(" + ") if s.startswith("OPTIMUS_")]
        if variables:
            config += f" + {', '.join(variables)}"
        return f"config {config}; warehouse {self.warehouse_shown()}"

    def warehouse_path(self) -> Path | None:
        """The DuckDB file, or None for a server warehouse; for a lake warehouse (spark:///lake), its
        catalog, the DuckDB file `<lake>/_catalog.duckdb` (so the daemon's lock file lies beside it)."""
        url = self.warehouse_url
        if url.startswith("duckdb:///"):
            return Path(url[len("duckdb:///") :])
        lake = self.lake_path()
        return None if lake is None else lake / "_catalog.duckdb"

    def lake_path(self) -> Path | None:
        """The lake folder of a spark:///path warehouse (its Parquet tables and catalog), else None."""
        url = self.warehouse_url
        return Path(url[len("spark:///") :]) if url.startswith("spark:///") else None


DOCS: dict[str, str] = {
    "data_paths": "Data directories, one per institution, each with clickstream_logs/latest and database_state/latest.",
    "export_path": "Where Person Course, course profile and Email CRM exports are written.",
    "www_path": "Where course structure JSON is written (www/course_structure/{org}-{course}-{run}.json).",
    "warehouse": "The warehouse URL: duckdb:///path/to/file.duckdb (default), postgresql://user@host:port/db, or spark:///path/to/lake (a lake folder of Parquet tables computed by Spark, relative to the config file's folder; spark:////abs/lake for an absolute path).",
    "warehouse_schema": "PostgreSQL only: the schema holding Optimus's tables.",
    "warehouse_reader_url": "PostgreSQL only: how the API's SQL, `optimus sql` and read views log in (postgresql://role:password@host/db), a role that may only SELECT the Optimus schemas; empty: Optimus makes one per database and schema when its writer may create roles (docs/postgresql.md).",
    "spark_master": "Spark warehouse only: the Spark master to compute on: local[*] (every core of this machine), local[N], or spark://host:7077 (a standalone cluster).",
    "memory_limit": "The process's memory budget for DuckDB (DuckDB's own default, 80% of RAM, is too much for a daemon); DuckDB fills it as a cache, and a writer's engine gets it less what Clickstream holds beside it (~0.4 GB; never under half), fixed at open since its settings are locked, so the process peaks near the limit plus ~0.25 GB (raise it for big derived queries).",
    "spill_path": "Folder where DuckDB spills when the memory limit is reached (default: beside the warehouse).",
    "threads": "DuckDB worker threads; 0 means one per core.",
    "geoip_country_db": "Optional MaxMind/DB-IP country .mmdb file; takes precedence over the bundled data.",
    "geoip_city_db": "Optional MaxMind/DB-IP city .mmdb file; adds region, city, latitude and longitude.",
    "event_file_prefix": "Only event files whose name starts with this are taken (the original's prefix); empty: all.",
    "include_orgs": "Institutions (orgs) to take; empty: all.",
    "exclude_orgs": "Institutions (orgs) to leave.",
    "include_courses": "Course patterns (fnmatch on the course id or its file-name form) to take; empty: all.",
    "exclude_courses": "Course patterns to leave.",
    "edge": "Take edX Edge files (…-edge-analytics.sql, -edge.mongo, edge events) too.",
    "ignored_services": 'Services not to run, by name (e.g. ["EmailCRM"]).',
    "rescan_interval": "Seconds between scans of the data paths when running as a daemon.",
    "api_host": "Address the API binds to (localhost by default).",
    "api_port": "Port of the API (the original used 8850).",
    "api_token": "Bearer token required for endpoints that can return personal data.",
    "require_token_for_all": "Require the token for every endpoint, status included.",
    "api_max_body_bytes": "Largest request body the API accepts (bytes); a bigger one gets 413 before it is read.",
    "email_crm_mode": "Email CRM export: 'delta' (only learners whose status changed) or 'full'.",
    "time_gap_cutoff": "Seconds: gaps between a learner's consecutive events longer than this are not time spent.",
    "max_archive_bytes": "Largest total size an archive may unpack to (protects against archive bombs).",
    "max_line_bytes": "Longest line of an event or forum file; a longer line is quarantined as too long (its size and first 200 characters kept). The default keeps the 1GB memory limit safe (edX caps an event at 50 KB).",
    "intake_path": "Folder of incoming edX deliveries that the daemon takes in before each scan.",
    "gnupg_home": "GnuPG home holding the key that decrypts edX deliveries.",
    "gnupg_passphrase_file": "File holding the passphrase of that key, if it has one.",
    "log_file": "Also write the daemon's log lines to this file.",
    "release_secret_file": "The key of the de-identified release's hashed learner ids (`optimus release`), mode 0600, made on first use; empty: ~/.config/optimus/release-secret. Never inside the warehouse, the data paths, the exports or the release.",
}

KEYS = [f.name for f in dataclasses.fields(Settings) if f.name not in ("source", "origins", "config_file", "config_chosen_by")]


def _coerce(key: str, value: object, where: str, base: Path) -> object:
    """Turn a raw TOML/env value into the type the field declares, or fail naming key and file."""
    hint = typing.get_type_hints(Settings)[key]
    optional = type(None) in typing.get_args(hint)
    target = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise ConfigError(f"{where}: setting '{key}' must not be empty")
    origin = typing.get_origin(target)
    try:
        if origin is list:
            if isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
            if not isinstance(value, list):
                raise ValueError("expected a list")
            (item,) = typing.get_args(target)
            return [(base / str(v)) if item is Path else str(v) for v in value]
        if target is Path:
            if not isinstance(value, str):
                raise ValueError("expected a path")
            path = Path(value).expanduser()
            return path if path.is_absolute() else base / path
        if target is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if target is int:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError("expected a whole number")
            return int(value)
        if target is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError("expected a string")
            if key == "warehouse" and "://" not in str(value):
                return str(base / Path(str(value)).expanduser())
            if key == "warehouse" and str(value).startswith("spark:///") and not str(value).startswith("spark:////"):
                return "spark:///" + str(base / Path(str(value)[len("spark:///") :]).expanduser())
            return str(value)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}: setting '{key}' has a bad value {value!r}: {exc}") from None
    raise ConfigError(f"{where}: setting '{key}' has an unsupported type")


def _validate(settings: Settings) -> None:
    if settings.email_crm_mode not in ("delta", "full"):
        raise ConfigError(
            f"{settings.origin('email_crm_mode')}: setting 'email_crm_mode' must be 'delta' or 'full', not {settings.email_crm_mode!r}"
        )
    scheme = settings.warehouse_url.split("://", 1)[0]
    if scheme not in ("duckdb", "postgresql", "postgres", "spark"):
        raise ConfigError(
            f"{settings.origin('warehouse')}: setting 'warehouse' has an unknown scheme {scheme!r} (use duckdb:///, postgresql:// or spark:///)"
        )
    if scheme == "spark" and (not settings.warehouse_url.startswith("spark:///") or settings.warehouse_url == "spark:///"):
        raise ConfigError(f"{settings.origin('warehouse')}: setting 'warehouse' must name the lake folder: spark:///path/to/lake")
    reader = settings.warehouse_reader_url
    if reader is not None and (reader.split("://", 1)[0] not in ("postgresql", "postgres") or not urlsplit(reader).username):
        raise ConfigError(
            f"{settings.origin('warehouse_reader_url')}: setting 'warehouse_reader_url' must be a postgresql:// URL "
            "naming the reader role (postgresql://role:password@host:port/db)"
        )
    if not 0 < settings.api_port < 65536:
        raise ConfigError(f"{settings.origin('api_port')}: setting 'api_port' must be between 1 and 65535")
    if settings.api_max_body_bytes < 1:
        raise ConfigError(f"{settings.origin('api_max_body_bytes')}: setting 'api_max_body_bytes' must be at least 1 byte")
    if settings.rescan_interval < 1:
        raise ConfigError(f"{settings.origin('rescan_interval')}: setting 'rescan_interval' must be at least 1 second")
    if settings.time_gap_cutoff < 1:
        raise ConfigError(f"{settings.origin('time_gap_cutoff')}: setting 'time_gap_cutoff' must be at least 1 second")


def load(path: Path | None = None, env: typing.Mapping[str, str] | None = None) -> Settings:
    """Read settings from `path` (or $OPTIMUS_CONFIG, or ./optimus.toml if present), then the environment.

    :param path: a TOML file; a missing file named explicitly is an error.
    :param env: the environment (defaults to os.environ), for tests.
    """
    env = os.environ if env is None else env
    values: dict[str, typing.Any] = {}  # each coerced to its field's type by _coerce
    sources: list[str] = []
    origins: dict[str, str] = {}
    chosen_by = "--config" if path is not None else ""
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
        chosen_by = f"${CONFIG_ENV}"
    elif path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = Path(DEFAULT_CONFIG_NAME)
        chosen_by = f"./{DEFAULT_CONFIG_NAME}"
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (run 'optimus init {path}' to write one)")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        base = path.resolve().parent
        for key, value in raw.items():
            if key not in KEYS:
                raise ConfigError(f"{path}: unknown setting '{key}' (known: {', '.join(KEYS)})")
            values[key] = _coerce(key, value, str(path), base)
            origins[key] = str(path)
        sources.append(str(path))
    cwd = Path.cwd()
    for name, value in env.items():
        if not name.startswith("OPTIMUS_") or name == CONFIG_ENV or name.startswith("OPTIMUS_TEST"):
            continue
        key = name[len("OPTIMUS_") :].lower()
        if key not in KEYS:
            raise ConfigError(f"environment: unknown setting {name} (known: OPTIMUS_{', OPTIMUS_'.join(k.upper() for k in KEYS)})")
        values[key] = _coerce(key, value, f"environment variable {name}", cwd)
        origins[key] = f"environment variable {name}"
        sources.append(name)
    settings = Settings(**values)
    settings.source = " + ".join(sources) or "defaults"
    settings.origins = origins
    settings.config_file = path.resolve() if path is not None else None
    settings.config_chosen_by = chosen_by
    _validate(settings)
    return settings


def check_data_paths(settings: Settings) -> None:
    """Fail clearly when a data path is missing, before anything is scanned."""
    if not settings.data_paths:
        raise ConfigError("no data_paths configured (set data_paths in the config file or OPTIMUS_DATA_PATHS)")
    for path in settings.data_paths:
        if not path.is_dir():
            raise ConfigError(f"{settings.origin('data_paths')}: setting 'data_paths': data path {path} does not exist or is not a folder")


def lock_path(settings: Settings) -> Path:
    """The daemon's lock file (it holds a local token): beside a DuckDB file; for a server warehouse, in
    the temporary folder, named by its URL. Here, not in daemon.py, since secrets() must know it too."""
    path = settings.warehouse_path()
    if path is not None:
        return path.with_name(path.name + ".daemon")
    digest = hashlib.sha1(settings.warehouse_url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"optimus-{digest}.daemon"


def release_secret_path(settings: Settings) -> Path:
    """The release secret's file: the setting, else ~/.config/optimus/release-secret (outside every folder Optimus writes)."""
    if settings.release_secret_file is not None:
        return settings.release_secret_file
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "optimus" / "release-secret"


def secrets(settings: Settings) -> dict[str, Path]:
    """Every file or folder Optimus knows to be secret, by what it is: none may lie in a folder the
    engine is allowed to read (see check_allowed_folders)."""
    found: dict[str, Path | None] = {
        "the config file": settings.config_file,
        "the daemon's lock file (it holds a local token)": lock_path(settings),
        "setting 'gnupg_home'": settings.gnupg_home,
        "setting 'gnupg_passphrase_file'": settings.gnupg_passphrase_file,
        "setting 'release_secret_file'": release_secret_path(settings),
    }
    warehouse = settings.warehouse_path()
    if warehouse is not None:
        found["the warehouse file"] = warehouse
        found["the warehouse's write-ahead log"] = warehouse.with_name(warehouse.name + ".wal")
    return {what: path.resolve() for what, path in found.items() if path is not None}


def check_allowed_folders(settings: Settings, folders: dict[Path, str], files: typing.Sequence[Path] = ()) -> None:
    """Refuse to start when a folder the engine may read and write (`folders`: path -> what it is)
    holds a secret, or a file it may read (`files`) is one: a query could read it, or COPY over it."""
    known = secrets(settings)
    for file in files:
        for what, secret in known.items():
            if file.resolve() == secret or secret.is_relative_to(file.resolve()):
                raise ConfigError(f"{file} is {what}: not a file to ingest")
    for folder, what_folder in folders.items():
        for what, secret in known.items():
            if secret == folder or secret.is_relative_to(folder):
                raise ConfigError(
                    f"{what_folder} {folder} holds {what} ({secret}); the warehouse engine may read and write that folder, "
                    "so move one of them elsewhere"
                )


def _default_shown(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return json.dumps([str(v) for v in value])
    return str(value)


def readme_rows() -> list[str]:
    """The README's settings table, one row per key, from DOCS: the README and `optimus init`'s comments
    say the same words (tests/test_docs.py checks each row is in the README as written here)."""
    defaults = Settings()
    return [f"| `{key}` | `{_default_shown(getattr(defaults, key))}` | {DOCS[key]} |" for key in KEYS]


def example_config() -> str:
    """A commented config file with every key at its default, for `optimus init`."""
    defaults = Settings()
    lines = [
        "# Optimus configuration. Every key can also be set as OPTIMUS_<KEY> in the environment",
        "# (lists as JSON, e.g. OPTIMUS_DATA_PATHS='[\"/data/uqx\"]').",
        "",
    ]
    for key in KEYS:
        lines.append(f"# {DOCS[key]}")
        value = getattr(defaults, key)
        if key == "data_paths":
            lines.append('data_paths = ["data"]')
        elif value is None:
            lines.append(f'# {key} = ""')
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        elif isinstance(value, list):
            lines.append(f"{key} = {json.dumps([str(v) for v in value])}")
        else:
            lines.append(f"{key} = {json.dumps(str(value))}")
        lines.append("")
    return "\n".join(lines)
