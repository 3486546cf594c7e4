"""Run the benchmark suite: `python -m bench [--events 1000000,10000000] [--runs 3] [--quick]`.

Every figure is measured side by side in the same run on the same files, as the median of
`--runs` runs with min and max, and written to bench/results/<date>-<name>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import duckdb

from bench.measure import Figure, fresh, gunzip_floor, optimus_argv, repeat, run_process

ROOT = Path(__file__).resolve().parent
DEFAULT_CACHE = ROOT / "cache"


def package(cache: Path, events: int, learners: int, days: int, quick: bool) -> tuple[Path, dict]:
    """A sample package of about `events` events, generated once and cached."""
    from optimus.sample import generate

    target = cache / f"pkg-{events}-{learners}-{days}"
    manifest_path = target / "sample_manifest.json"
    if manifest_path.exists():
        return target, json.loads(manifest_path.read_text())
    per_day = max(1.0, events / (learners * days * 0.75))
    tmp = cache / (target.name + ".tmp")
    fresh(tmp)
    started = time.perf_counter()
    manifest = generate(tmp, courses=2 if quick else 4, learners=learners, days=days, seed=42, events_per_learner_day=per_day)
    print(f"generated {manifest['events']['valid']:,} events in {time.perf_counter() - started:.1f}s -> {target}", file=sys.stderr)
    tmp.rename(target)
    # the links are relative, so the renamed folder keeps working
    return target, json.loads(manifest_path.read_text())


def event_files(pkg: Path) -> list[Path]:
    return sorted((pkg / "clickstream_logs" / "events").glob("*.log.gz"))


def data_path_with(work: Path, files: list[Path], package_dir: Path | None = None) -> Path:
    """A data path holding just these event files (links) and, optionally, a package's database state."""
    data = work / "data"
    fresh(data)
    events = data / "clickstream_logs" / "events"
    events.mkdir(parents=True)
    (data / "clickstream_logs" / "latest").symlink_to("events")
    for path in files:
        (events / path.name).symlink_to(path)
    state = data / "database_state"
    state.mkdir()
    if package_dir is not None:
        (state / "latest").symlink_to((package_dir / "database_state" / "latest").resolve())
    return data


def env_for(data: Path, warehouse: str, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}
    env.update(
        {
            "OPTIMUS_DATA_PATHS": json.dumps([str(data)]),
            "OPTIMUS_WAREHOUSE": warehouse,
            "OPTIMUS_EXPORT_PATH": str(work / "exports"),
            "OPTIMUS_WWW_PATH": str(work / "www"),
        }
    )
    return env


def ingest_figure(
    work: Path,
    files: list[Path],
    runs: int,
    services: list[str],
    package_dir: Path | None = None,
    warehouse: str | None = None,
    env: dict[str, str] | None = None,
) -> Figure:
    data = data_path_with(work, files, package_dir)
    wh = work / "wh.duckdb"
    target = warehouse or str(wh)
    args = ["ingest"] + [a for s in services for a in ("--service", s)]

    def prepare() -> None:
        fresh(wh)
        fresh(work / "wh.duckdb.spill")
        if target.startswith("spark:///"):  # spark:////abs/lake: the lake folder
            fresh(Path(target.removeprefix("spark:///")))
        elif warehouse:
            _reset_postgres(warehouse)

    return repeat(runs, prepare, lambda: run_process(optimus_argv(*args), {**env_for(data, target, work), **(env or {})}))


def _reset_postgres(url: str) -> None:
    import psycopg

    base, _, query = url.partition("?")
    with psycopg.connect(base, autocommit=True) as con:
        con.execute("DROP SCHEMA IF EXISTS optimus_bench CASCADE")


def duckdb_raw_figure(work: Path, files: list[Path], runs: int) -> Figure:
    """What a user might do instead: DuckDB's read_json of the same files into a table, no normalisation."""
    db = work / "raw.duckdb"
    script = (
        "import duckdb, sys, json; con = duckdb.connect(sys.argv[1]); "
        "con.execute(\"CREATE TABLE raw AS SELECT * FROM read_json(?, format='newline_delimited', ignore_errors=true, "
        'union_by_name=true, maximum_object_size=16777216)", [json.loads(sys.argv[2])])'
    )
    return repeat(
        runs, lambda: fresh(db), lambda: run_process([sys.executable, "-c", script, str(db), json.dumps([str(f) for f in files])])
    )


# the columns an event's analysis reads, declared (no sampling, no union of every key): the fair
# "parse once into typed columns" baseline of issue 22 (ingest_all / this, target <= 1.2)
DECLARED_COLUMNS = {
    "username": "VARCHAR",
    "event_type": "VARCHAR",
    "event_source": "VARCHAR",
    "time": "VARCHAR",
    "ip": "VARCHAR",
    "agent": "VARCHAR",
    "page": "VARCHAR",
    "host": "VARCHAR",
    "referer": "VARCHAR",
    "event": "JSON",
    "context": "STRUCT(course_id VARCHAR, user_id VARCHAR, org_id VARCHAR, path VARCHAR)",
}


def duckdb_declared_figure(work: Path, files: list[Path], runs: int) -> Figure:
    """DuckDB's read_json of the same files into a table with the columns declared: parsing each line once
    into typed columns, and nothing else (no hash, no rules, no line numbers, no quarantine)."""
    db = work / "declared.duckdb"
    script = (
        "import duckdb, sys, json; con = duckdb.connect(sys.argv[1]); "
        "con.execute(\"CREATE TABLE raw AS SELECT * FROM read_json(?, format='newline_delimited', ignore_errors=true, "
        'columns=?, maximum_object_size=16777216)", [json.loads(sys.argv[2]), json.loads(sys.argv[3])])'
    )
    argv = [sys.executable, "-c", script, str(db), json.dumps([str(f) for f in files]), json.dumps(DECLARED_COLUMNS)]
    return repeat(runs, lambda: fresh(db), lambda: run_process(argv))


def python_figure(work: Path, files: list[Path], runs: int) -> Figure:
    db = work / "python.duckdb"
    return repeat(runs, lambda: fresh(db), lambda: run_process([sys.executable, "-m", "bench.python_ingester", str(db), *map(str, files)]))


def read_csv_figure(work: Path, sql_files: list[Path], runs: int) -> Figure:
    """DuckDB read_csv of every .sql file into all-text tables: the floor for Database State."""
    db = work / "csv.duckdb"
    script = (
        "import duckdb, sys, json; con = duckdb.connect(sys.argv[1])\n"
        "for i, p in enumerate(json.loads(sys.argv[2])):\n"
        "    con.execute(f\"CREATE TABLE t{i} AS SELECT * FROM read_csv(?, delim='\\t', quote='', escape='', header=true, "
        "all_varchar=true, nullstr='NULL', ignore_errors=true)\", [p])\n"
    )
    return repeat(
        runs, lambda: fresh(db), lambda: run_process([sys.executable, "-c", script, str(db), json.dumps([str(f) for f in sql_files])])
    )


ORIGINAL_DERIVED = ("IPToCountry", "TimeFinder", "PersonCourse")


def research_services() -> list[str]:
    """The derived services beyond the original's (the research tables), in registration order."""
    from optimus.services import load_services

    return [n for n, cls in load_services().items() if cls.is_derived() and n not in ORIGINAL_DERIVED and not cls.claims]


def loaded_warehouse(work: Path, pkg: Path, files: list[Path]) -> tuple[Path, Path]:
    """A data path and a warehouse that holds the raw tables (the file services' work), made once per size."""
    data = data_path_with(work, files, pkg)
    loaded = work / "loaded.duckdb"
    fresh(loaded)
    run_process(
        optimus_argv(
            "ingest",
            "--service",
            "Clickstream",
            "--service",
            "DatabaseState",
            "--service",
            "DiscussionForums",
            "--service",
            "CourseStructure",
        ),
        env_for(data, str(loaded), work),
    )
    return data, loaded


def derived_figure(work: Path, data: Path, start: Path, services: list[str], runs: int, name: str) -> Figure:
    """The given derived services, on a copy of the warehouse `start` (which holds what they need)."""
    wh = work / f"{name}.duckdb"

    def prepare() -> None:
        fresh(wh)
        shutil.copy(start, wh)

    args = optimus_argv("ingest", *[a for s in services for a in ("--service", s)])
    return repeat(runs, prepare, lambda: run_process(args, env_for(data, str(wh), work)))


def rescan_figure(work: Path, n_files: int, runs: int) -> Figure:
    """A scan that finds nothing new, with n_files registered (measured in-process: no start-up cost)."""
    from optimus.config import Settings
    from optimus.pipeline import Pipeline
    from optimus.warehouse import connect

    data = work / "rescan"
    fresh(data)
    pkg = data / "database_state" / "2024-01-07"
    pkg.mkdir(parents=True)
    (data / "database_state" / "latest").symlink_to("2024-01-07")
    (data / "clickstream_logs").mkdir()
    for i in range(n_files):
        (pkg / f"UQx-C{i}-1T2024-auth_user-prod-analytics.sql").write_text("id\tusername\n1\tu\n")
    settings = Settings(data_paths=[data], warehouse=str(work / "rescan.duckdb"))
    fresh(work / "rescan.duckdb")
    wh = connect(settings)
    pipeline = Pipeline(settings, wh)
    pipeline.setup()
    pipeline.scan()
    figure = Figure()
    for _ in range(runs):
        started = time.perf_counter()
        report = pipeline.scan()
        figure.seconds.append(time.perf_counter() - started)
        assert not report.new and not report.changed and report.unchanged == n_files
    wh.close()
    return figure


SPARK_MASTERS = ("local[1]", "local[2]")  # one core, then two: the speed-up from the second


def spark_missing() -> str | None:
    """Why Spark cannot run here (no pyspark, no Java), or None."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java (Debian's openjdk-17-jre-headless, or JAVA_HOME)"
    return None


def spark_figures(work: Path, files: list[Path], runs: int, f: dict[str, Figure], out: dict) -> None:
    """The same Clickstream ingest as `ingest_all`, on a Spark warehouse (a lake in `work`) with each of
    SPARK_MASTERS: every run a separate `optimus` process (its own JVM), the executors' Python its own
    (warehouse/spark_session.py)."""
    missing = spark_missing()
    if missing:
        out["spark_error"] = f"not measured: {missing}"
        return
    lake = work / "lake"
    for master in SPARK_MASTERS:
        env = {"OPTIMUS_SPARK_MASTER": master, "SPARK_LOCAL_IP": "127.0.0.1"}
        try:
            f[spark_key(master)] = ingest_figure(work, files, runs, ["Clickstream"], warehouse=f"spark:///{lake}", env=env)
        except Exception as exc:  # reported, not hidden
            out["spark_error"] = f"{master}: {str(exc)[-500:]}"
            return


def spark_key(master: str) -> str:
    """The figure's name: `ingest_all_spark_local1` for local[1]."""
    return "ingest_all_spark_" + "".join(c for c in master if c.isalnum())


def spark_ratios(n_events: int, med: dict[str, float], ratios: dict[str, float], out: dict) -> None:
    """Spark against itself (the second core) and against DuckDB on the same files, and its per-core rate
    (local[1]: one core does all the work, the driver's included)."""
    one, two = (med.get(spark_key(m)) for m in SPARK_MASTERS)
    if one is None or two is None:
        return
    ratios["spark local[1] / local[2] (speed-up from the second core)"] = one / two
    ratios["spark local[2] / duckdb ingest_all"] = two / med["ingest_all"]
    out["events_per_second_spark"] = {master: round(n_events / med[spark_key(master)]) for master in SPARK_MASTERS}
    out["events_per_second_spark_per_core"] = round(n_events / one)


def postgres_url() -> str | None:
    url = os.environ.get("OPTIMUS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=2).close()
    except Exception:
        return None
    return url


def machine() -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    import importlib.metadata

    import pyarrow

    import optimus

    try:
        pyspark: str | None = importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        pyspark = None

    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory, 1),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "optimus": optimus.__version__,
        "pyspark": pyspark,
        "platform": platform.platform(),
    }


def sizes(files: list[Path]) -> dict:
    import gzip

    packed = sum(f.stat().st_size for f in files)
    unpacked = 0
    for f in files:
        with gzip.open(f, "rb") as fh:
            while chunk := fh.read(1 << 24):
                unpacked += len(chunk)
    return {"files": len(files), "bytes_packed": packed, "bytes_unpacked": unpacked}


def run_size(label: str, events: int, learners: int, days: int, args: argparse.Namespace, results: dict, spark: bool = False) -> None:
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    pkg, manifest = package(cache, events, learners, days, args.quick)
    work = cache / f"work-{label}"
    work.mkdir(exist_ok=True)
    files = event_files(pkg)
    biggest = max(files, key=lambda f: f.stat().st_size)
    n_events = manifest["events"]["valid"]
    big_events = next((f["valid"] for f in manifest["events"]["files"] if Path(f["path"]).name == biggest.name), 0)
    runs = args.runs
    out: dict = {
        "input": {
            "events": n_events,
            "learners": learners,
            "days": days,
            **sizes(files),
            "largest_file": biggest.name,
            "largest_file_events": big_events,
        }
    }
    print(f"[{label}] {n_events:,} events in {len(files)} files", file=sys.stderr)

    f = {}
    f["floor_one"] = repeat(runs, None, gunzip_floor([biggest]))
    f["ingest_one"] = ingest_figure(work, [biggest], runs, ["Clickstream"])
    f["floor_all"] = repeat(runs, None, gunzip_floor(files))
    f["ingest_all"] = ingest_figure(work, files, runs, ["Clickstream"])
    f["duckdb_raw"] = duckdb_raw_figure(work, files, runs)
    f["duckdb_declared"] = duckdb_declared_figure(work, files, runs)
    if not args.clickstream_only:
        f["python"] = python_figure(work, files, runs)
        sql_files = sorted((pkg / "database_state" / "latest").resolve().rglob("*.sql"))
        f["db_state"] = ingest_figure(work, [], runs, ["DatabaseState"], package_dir=pkg)
        f["read_csv"] = read_csv_figure(work, sql_files, runs)
        data, loaded = loaded_warehouse(work, pkg, files)
        f["derived"] = derived_figure(work, data, loaded, list(ORIGINAL_DERIVED), runs, "derived")
        research = research_services()
        if research:
            # the research tables, on a warehouse that holds the original derived tables they read (person_course, ...)
            with_original = work / "with_original.duckdb"
            shutil.copy(loaded, with_original)
            run_process(
                optimus_argv("ingest", *[a for s in ORIGINAL_DERIVED for a in ("--service", s)]), env_for(data, str(with_original), work)
            )
            f["research"] = derived_figure(work, data, with_original, research, runs, "research")
            out["research_services"] = research
        pg = None if args.skip_postgres else postgres_url()
        if pg:
            sep = "&" if "?" in pg else "?"
            try:
                f["ingest_all_postgres"] = ingest_figure(
                    work, files, runs, ["Clickstream"], warehouse=f"{pg}{sep}options=-csearch_path%3Doptimus_bench"
                )
            except Exception as exc:  # reported, not hidden
                out["postgres_error"] = str(exc)[-500:]
    if spark:
        spark_figures(work, files, runs, f, out)
    out["figures"] = {k: v.as_dict() for k, v in f.items()}
    med = {k: v.median for k, v in f.items()}
    ratios = {
        "ingest_one / gzip floor (target <= 2.5)": med["ingest_one"] / med["floor_one"],
        "ingest_all / summed gzip floor (target <= 1.5)": med["ingest_all"] / med["floor_all"],
        "ingest_all / duckdb read_json raw (target <= 1.5)": med["ingest_all"] / med["duckdb_raw"],
        "ingest_all / duckdb read_json declared (target <= 1.2)": med["ingest_all"] / med["duckdb_declared"],
    }
    if "python" in med:
        ratios["pure python / ingest_all (target >= 3)"] = med["python"] / med["ingest_all"]
        ratios["db_state / duckdb read_csv (target <= 2)"] = med["db_state"] / med["read_csv"]
        ratios["derived / summed gzip floor (target <= 0.5)"] = med["derived"] / med["floor_all"]
    if "research" in med:
        ratios["research tables / summed gzip floor"] = med["research"] / med["floor_all"]
        ratios["all derived / summed gzip floor"] = (med["derived"] + med["research"]) / med["floor_all"]
    spark_ratios(n_events, med, ratios, out)
    out["ratios"] = {k: round(v, 3) for k, v in ratios.items()}
    out["events_per_second"] = round(n_events / med["ingest_all"])
    out["events_per_second_per_core"] = round(n_events / med["ingest_all"] / (os.cpu_count() or 1))
    if "ingest_all_postgres" in med:
        out["events_per_second_postgres"] = round(n_events / med["ingest_all_postgres"])
    results["sizes"][label] = out


def run_api_load(args: argparse.Namespace, results: dict) -> None:
    """The API under N concurrent clients while a daemon ingests the first size's sample package."""
    from bench.api_load import api_load_figure

    count = int(args.events.split(",")[0])
    learners = 100 if args.quick else max(1000, count // 100)
    pkg, _manifest = package(Path(args.cache), count, learners, args.days, args.quick)
    results["api_load"] = api_load_figure(pkg, Path(args.cache) / "work-api", args.api_clients, args.api_seconds)


def run_memory(args: argparse.Namespace, results: dict) -> None:
    """Peak RSS ingesting one big day file with the default memory limit."""
    cache = Path(args.cache)
    target_bytes = args.big_file_gb * 1024**3
    learners = 200_000 if not args.quick else 500
    events = int(target_bytes / 800)
    pkg, manifest = package(cache, events, learners, 1, args.quick)
    files = event_files(pkg)
    work = cache / "work-memory"
    work.mkdir(exist_ok=True)
    fig = ingest_figure(work, files, 1, ["Clickstream"])
    results["memory"] = {"input": sizes(files), "events": manifest["events"]["valid"], **fig.as_dict()}


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for label, out in results["sizes"].items():
        table = Table(
            title=f"{label}: {out['input']['events']:,} events, {out['input']['files']} files, "
            f"{out['input']['bytes_packed'] / 1e6:.0f} MB packed / {out['input']['bytes_unpacked'] / 1e6:.0f} MB unpacked"
        )
        for col in ("measurement", "median s", "min s", "max s", "peak RSS MB"):
            table.add_column(col, justify="left" if col == "measurement" else "right")
        for name, fig in out["figures"].items():
            table.add_row(name, f"{fig['median_s']:.3f}", f"{fig['min_s']:.3f}", f"{fig['max_s']:.3f}", str(fig.get("peak_rss_mb", "")))
        console.print(table)
        ratios = Table(title="ratios (medians)")
        ratios.add_column("ratio")
        ratios.add_column("value", justify="right")
        for name, value in out["ratios"].items():
            ratios.add_row(name, f"{value:.2f}")
        ratios.add_row("events/s end to end", f"{out['events_per_second']:,}")
        ratios.add_row("events/s per core (headline)", f"{out['events_per_second_per_core']:,}")
        if "events_per_second_postgres" in out:
            ratios.add_row("events/s on PostgreSQL", f"{out['events_per_second_postgres']:,}")
        for master, rate in out.get("events_per_second_spark", {}).items():
            ratios.add_row(f"events/s on Spark {master}", f"{rate:,}")
        if "events_per_second_spark_per_core" in out:
            ratios.add_row("events/s per core on Spark (local[1])", f"{out['events_per_second_spark_per_core']:,}")
        if "spark_error" in out:
            ratios.add_row("Spark", out["spark_error"][:200])
        console.print(ratios)
    if "rescan" in results:
        console.print(
            f"rescan, nothing new, {results['rescan']['files']:,} files registered: {results['rescan']['median_s']:.3f}s (target <= 1 s)"
        )
    if "api_load" in results:
        console.print(api_load_line(results["api_load"]))
    if "memory" in results:
        m = results["memory"]
        console.print(
            f"peak RSS ingesting a {m['input']['bytes_unpacked'] / 1e9:.2f} GB (unpacked) day file: {m['peak_rss_mb']:.0f} MB (target <= 1536 MB)"
        )


def api_load_line(a: dict) -> str:
    return (
        f"API under load, {a['clients']} clients during {a['during']}: {a['requests_per_second']:,} requests/s, "
        f"p50 {a['p50_ms']:,.0f} ms, p95 {a['p95_ms']:,.0f} ms, p99 {a['p99_ms']:,.0f} ms, max {a['max_ms']:,.0f} ms; "
        f"{a['requests']:,} requests in {a['seconds']:.1f} s, {a['errors']} errors."
    )


def markdown(results: dict) -> str:
    """The figures as Markdown tables, for docs/performance.md."""
    m = results["machine"]
    lines = [
        f"Run `{results['name']}` on {results['date']}: {m['cores']} cores, {m['memory_gb']} GB, {m['cpu']}; "
        f"Python {m['python']}, DuckDB {m['duckdb']}, pyarrow {m['pyarrow']}, Optimus {m['optimus']}"
        + (f", pyspark {m['pyspark']}." if m.get("pyspark") else "."),
        "",
    ]
    for label, out in results["sizes"].items():
        i = out["input"]
        lines += [
            f"### {label}",
            "",
            f"{i['events']:,} events, {i['learners']:,} learners, {i['files']} day files, {i['bytes_packed'] / 1e6:,.0f} MB gzipped, "
            f"{i['bytes_unpacked'] / 1e6:,.0f} MB unpacked; largest file {i['largest_file_events']:,} events.",
            "",
            "| measurement | median s | min s | max s | peak RSS MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, fig in out["figures"].items():
            lines.append(f"| {name} | {fig['median_s']:.2f} | {fig['min_s']:.2f} | {fig['max_s']:.2f} | {fig.get('peak_rss_mb', '')} |")
        lines += ["", "| ratio (medians) | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.2f} |" for name, value in out["ratios"].items()]
        lines.append(f"| events/s end to end | {out['events_per_second']:,} |")
        lines.append(f"| **events/s per core** | **{out['events_per_second_per_core']:,}** |")
        if "events_per_second_postgres" in out:
            lines.append(f"| events/s on PostgreSQL | {out['events_per_second_postgres']:,} |")
        if "postgres_error" in out:
            lines.append(f"| PostgreSQL | failed: {out['postgres_error'][:200]} |")
        lines.append("")
        lines += spark_markdown(out)
    if "rescan" in results:
        r = results["rescan"]
        lines.append(
            f"Rescan with nothing new, {r['files']:,} files registered: median {r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f})."
        )
    if "api_load" in results:
        lines.append(api_load_line(results["api_load"]))
    if "memory" in results:
        mem = results["memory"]
        lines.append(
            f"Peak RSS ingesting one {mem['input']['bytes_unpacked'] / 1e9:.2f} GB (unpacked) day file of {mem['events']:,} events: "
            f"{mem['peak_rss_mb']:,.0f} MB, in {mem['median_s']:.1f} s."
        )
    return "\n".join(lines) + "\n"


SPARK_ESTIMATE_EXECUTORS = (4, 16, 64)


def serial_share(one: float, two: float) -> float:
    """The share of local[1]'s time that a second core did not shorten (Amdahl's law from the two runs:
    two = one x (s + (1 - s) / 2)), between 0 and 1: the driver's work, each statement's planning and
    scheduling, the files taken one at a time."""
    return min(1.0, max(0.0, 2 * two / one - 1))


def spark_markdown(out: dict) -> list[str]:
    """The Spark rows in the shape of docs/spark.md's table (which a run's figures replace), and the estimate
    for N one-core executors by Amdahl's law: local[1]'s time x (s + (1 - s) / N), s the serial share the
    second core shows (serial_share). A linear N x per-core rate would promise what the driver's serial
    work cannot give."""
    if "spark_error" in out:
        return [f"Spark: {out['spark_error'][:300]}", ""]
    if "events_per_second_spark_per_core" not in out:
        return []
    figures, events = out["figures"], out["input"]["events"]
    one, two = (figures[spark_key(m)]["median_s"] for m in SPARK_MASTERS)
    duck = figures["ingest_all"]["median_s"]
    serial = serial_share(one, two)
    lines = [
        f"Spark, the same Clickstream ingest of {events:,} events (`--service Clickstream`), each run its own `optimus` process:",
        "",
        "| engine | cores | median s | events/s | events/s per core | speed-up over local[1] |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for master, seconds, cores in (("Spark local[1]", one, 1), ("Spark local[2]", two, 2)):
        lines.append(
            f"| {master} | {cores} | {seconds:.2f} | {events / seconds:,.0f} | {events / seconds / cores:,.0f} | {one / seconds:.2f} |"
        )
    cores = os.cpu_count() or 1  # DuckDB's threads: every core
    lines.append(f"| DuckDB (ingest_all) | {cores} | {duck:.2f} | {events / duck:,.0f} | {events / duck / cores:,.0f} | {one / duck:.2f} |")
    for n in SPARK_ESTIMATE_EXECUTORS:
        seconds = one * (serial + (1 - serial) / n)
        lines.append(
            f"| Spark, {n} executors (estimate) | {n} | {seconds:.2f} | {events / seconds:,.0f} | {events / seconds / n:,.0f} | {one / seconds:.2f} |"
        )
    lines += [
        "",
        f"Serial share from one core to two (Amdahl's law): {serial:.2f}; the estimates assume it holds, so no number of"
        f" executors brings this ingest under {one * serial:.0f} s.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument(
        "--events", default="1000000,10000000", help="comma-separated event counts (1M pairs with 10k learners, 10M with 100k)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--name", default="default")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--rescan-files", type=int, default=10_000)
    parser.add_argument("--big-file-gb", type=float, default=5.0, help="size (unpacked) of the day file for the memory figure; 0 skips it")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--clickstream-only",
        action="store_true",
        help="only Clickstream's figures and their baselines (floors, read_json): issue 22's ratios at 10M",
    )
    parser.add_argument("--skip-spark", action="store_true", help="leave out the Spark figures (local[1], local[2]; first size only)")
    parser.add_argument("--api-clients", type=int, default=50, help="concurrent clients of the API-under-load figure")
    parser.add_argument("--api-seconds", type=float, default=10.0, help="how long they run (0 skips the figure)")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks every figure is produced (seconds)")
    parser.add_argument("--out", default=None, help="results JSON path (default bench/results/<date>-<name>.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.runs, args.days, args.rescan_files, args.big_file_gb = "3000", 1, 2, 50, 0.001
        args.api_seconds = min(args.api_seconds, 3.0)
    results: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "name": args.name,
        "machine": machine(),
        "sizes": {},
    }
    for i, count in enumerate(int(c) for c in args.events.split(",") if c):
        learners = 100 if args.quick else max(1000, count // 100)
        # Spark on the first size only (1M by default): local[1] and local[2] of a bigger one take long on 2 cores
        run_size(f"{count:,} events", count, learners, args.days, args, results, spark=i == 0 and not args.skip_spark)
    work = Path(args.cache) / "work-rescan"
    work.mkdir(parents=True, exist_ok=True)
    rescan = rescan_figure(work, args.rescan_files, max(3, args.runs))
    results["rescan"] = {"files": args.rescan_files, **rescan.as_dict()}
    if args.api_seconds > 0:
        run_api_load(args, results)
    if args.big_file_gb > 0:
        run_memory(args, results)
    out = Path(args.out) if args.out else ROOT / "results" / f"{dt.date.today().isoformat()}-{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print_table(results)
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
