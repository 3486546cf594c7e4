"""Turn a plain data folder (e.g. `optimus sample`) into a delivery as edX sends it, encrypted.

Writes `{org}-{date}.zip` per org (a folder `{org}-{date}/` of files each encrypted on its own,
`.gpg` appended, `ora/` kept) and `{name}.log.gz.gpg` per daily event file, encrypted to a key
made without a passphrase in the given GnuPG home, so that intake can be shown and tested
without real data. Not for real data: the key has no passphrase.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from optimus import discovery
from optimus.errors import OptimusError
from optimus.intake import gpg


class DeliveryError(OptimusError):
    """The plain folder cannot be turned into a delivery."""


def default_delivery_dir(data_dir: Path) -> Path:
    """Beside the data folder: `DIR-delivery`."""
    data_dir = Path(data_dir)
    return data_dir.parent / f"{data_dir.name}-delivery"


def _org(name: str) -> str:
    info = discovery.classify(name.removesuffix(".failed"))
    if isinstance(info, discovery.Classified) and info.org:
        return info.org
    return name.split("-", 1)[0]


def encrypt_delivery(data_dir: Path, out_dir: Path, gnupg_home: Path) -> dict:
    """Write the encrypted delivery of `data_dir` into `out_dir`; returns {key, packages, events}.

    :param gnupg_home: a GnuPG home; the sample key is created there the first time.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    state = discovery.latest_folder(data_dir / "database_state")
    events = discovery.latest_folder(data_dir / "clickstream_logs")
    if state is None and events is None:
        raise DeliveryError(f"{data_dir}: no database_state or clickstream_logs to deliver")
    key = gpg.sample_key(Path(gnupg_home))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".encrypting-", dir=out_dir))
    packages: list[str] = []
    event_files: list[str] = []
    try:
        if state is not None:
            day = discovery._day(state.name)
            if day is None:
                raise DeliveryError(f"{state}: the package folder's name carries no date")
            by_org: dict[str, list[Path]] = {}
            for path in sorted(p for p in state.rglob("*") if p.is_file()):
                by_org.setdefault(_org(path.name), []).append(path)
            for org, files in sorted(by_org.items()):
                packages.append(_package(org, day.isoformat(), state, files, out_dir, work, gnupg_home, key))
        if events is not None:
            for path in sorted(p for p in events.iterdir() if p.is_file()):
                event_files.append(_event_file(path, out_dir, work, gnupg_home, key))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"key": key, "gnupg_home": str(gnupg_home), "packages": packages, "events": event_files}


def _package(org: str, day: str, state: Path, files: list[Path], out_dir: Path, work: Path, home: Path, key: str) -> str:
    folder = f"{org}-{day}"
    final = out_dir / f"{folder}.zip"
    tmp = work / final.name
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in files:
            rel = path.relative_to(state)
            if path.name.endswith(".failed"):
                zf.write(path, f"{folder}/{rel}")  # edX's traceback of a failed export, as delivered
                continue
            encrypted = work / "member.gpg"
            gpg.encrypt(path, encrypted, home=home, recipient=key)
            zf.write(encrypted, f"{folder}/{rel}.gpg")
            encrypted.unlink()
    os.replace(tmp, final)
    return final.name


def _event_file(path: Path, out_dir: Path, work: Path, home: Path, key: str) -> str:
    source = path
    if not path.name.endswith(".gz"):  # edX delivers event files gzipped
        source = work / f"{path.name}.gz"
        with open(path, "rb") as src, gzip.open(source, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    final = out_dir / f"{source.name}.gpg"
    tmp = work / final.name
    gpg.encrypt(source, tmp, home=home, recipient=key)
    os.replace(tmp, final)
    return final.name
