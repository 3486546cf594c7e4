"""GnuPG through `gpg --batch`: decrypt one delivered file into a private temporary file, streaming.

A subprocess rather than a wrapper library: gpg streams from the file to our output descriptor
without the data passing through Python, and its exit status and stderr are all we need to say
why a file did not decrypt. gpg may write part of the plaintext before it finds that a file is
truncated or corrupt, so the output always goes to a temporary name that the caller renames.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from optimus.errors import OptimusError

SAMPLE_UID = "Optimus sample delivery <sample-delivery@optimus.invalid>"


class GnuPGError(OptimusError):
    """gpg is missing, or a key could not be made or found."""


class DecryptError(GnuPGError):
    """One delivered file did not decrypt (wrong key, corrupt or truncated data); the message names it."""


def gpg_binary() -> str:
    found = shutil.which("gpg")
    if not found:
        raise GnuPGError("gpg not found: install GnuPG (Debian: apt-get install gnupg) to take in encrypted deliveries")
    return found


def _base(home: Path | None) -> list[str]:
    args = [gpg_binary(), "--batch", "--no-tty", "--quiet", "--yes"]
    if home is not None:
        args += ["--homedir", str(home)]
    return args


def _gpg_says(stderr: bytes) -> str:
    """gpg's own reason, one line: its last 'gpg:' lines without the chatter about key ids."""
    lines = [
        line.strip().removeprefix("gpg: ")
        for line in stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("[GNUPG:]")
    ]
    useful = [line for line in lines if not line.startswith('"') and "encrypted with" not in line]
    return "; ".join(useful[-3:]) or "no reason given"


def prepare_home(home: Path) -> None:
    """Create a GnuPG home with the permissions gpg insists on (it warns about anything wider)."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)


def decrypt(source: Path, dest: Path, *, home: Path | None, passphrase_file: Path | None = None) -> None:
    """Decrypt `source` into `dest`, created new with mode 0600; on failure `dest` is removed.

    :param home: the GnuPG home holding the secret key (None: gpg's default).
    :param passphrase_file: a file holding the key's passphrase, if it has one.
    """
    if home is not None and not home.is_dir():
        raise GnuPGError(f"GnuPG home {home} does not exist (setting 'gnupg_home')")
    args = [a for a in _base(home) if a != "--quiet"]  # quiet hides why the secret key could not be used
    if passphrase_file is not None:
        if not passphrase_file.is_file():
            raise GnuPGError(f"passphrase file {passphrase_file} does not exist (setting 'gnupg_passphrase_file')")
        args += ["--pinentry-mode", "loopback", "--passphrase-file", str(passphrase_file)]
    else:
        args += ["--pinentry-mode", "error"]  # never wait on a passphrase prompt (a daemon has no one to ask)
    # gpg's exit status alone is not enough: a file whose key packet is damaged exits 0 having
    # written nothing. Success is what its status lines say: DECRYPTION_OKAY, and no failure.
    args += ["--status-fd", "2", "--decrypt", str(source)]
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            done = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, check=False)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    status = {
        line.split()[1]
        for line in done.stderr.decode("utf-8", "replace").splitlines()
        if line.startswith("[GNUPG:] ") and len(line.split()) > 1
    }
    bad = {"DECRYPTION_FAILED", "BADMDC", "NODATA", "ERROR", "FAILURE"} & status
    if done.returncode != 0 or "DECRYPTION_OKAY" not in status or bad:
        dest.unlink(missing_ok=True)
        reason = _gpg_says(done.stderr)
        if reason == "no reason given":
            reason = f"{reason} (status: {', '.join(sorted(status)) or 'none'}; no OpenPGP data it could decrypt)"
        hint = ""
        if any(w in reason for w in ("Bad passphrase", "No passphrase", "No pinentry", "Operation cancelled")):
            hint = (
                " (the passphrase in 'gnupg_passphrase_file' is wrong)"
                if passphrase_file
                else " (the key needs a passphrase: set 'gnupg_passphrase_file')"
            )
        elif "NO_SECKEY" in status or "No secret key" in reason:
            hint = f" (the key it was encrypted to is not in GnuPG home {home or '~/.gnupg'}; set 'gnupg_home')"
        elif any(w in reason for w in ("packet", "pending bytes", "CRC", "OpenPGP data", "inflate", "invalid")):
            hint = " (corrupt or truncated: ask for the file to be delivered again)"
        raise DecryptError(f"{source}: does not decrypt: gpg: {reason}{hint}")


def encrypt(source: Path, dest: Path, *, home: Path, recipient: str) -> None:
    """Encrypt `source` to `recipient` (a fingerprint) into `dest`, as edX does for each delivered file."""
    args = _base(home) + ["--trust-model", "always", "--recipient", recipient, "--output", str(dest), "--encrypt", str(source)]
    done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if done.returncode != 0:
        dest.unlink(missing_ok=True)
        raise GnuPGError(f"{source}: cannot encrypt to {recipient}: gpg: {_gpg_says(done.stderr)}")


def find_key(home: Path, uid: str = SAMPLE_UID) -> str | None:
    """The fingerprint of the secret key with this user id in `home`, or None."""
    if not home.is_dir():
        return None
    done = subprocess.run(_base(home) + ["--with-colons", "--list-secret-keys", uid], capture_output=True, check=False)
    if done.returncode != 0:
        return None
    for line in done.stdout.decode().splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    return None


def generate_key(home: Path, uid: str = SAMPLE_UID) -> str:
    """Make a key with no passphrase (ed25519 signing, cv25519 encryption: fast) and return its fingerprint."""
    prepare_home(home)
    args = _base(home) + ["--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "future-default", "default", "never"]
    done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    fingerprint = find_key(home, uid)
    if done.returncode != 0 or fingerprint is None:
        raise GnuPGError(f"cannot create a key in GnuPG home {home}: gpg: {_gpg_says(done.stderr)}")
    return fingerprint


def sample_key(home: Path) -> str:
    """The sample delivery key in `home`, created the first time."""
    return find_key(home) or generate_key(home)


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent that gpg started for `home` (tests and throw-away homes)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf and home.is_dir():
        subprocess.run([gpgconf, "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
