"""Intake: turn edX deliveries (encrypted weekly packages and daily event files) into a data path.

`take_in(settings, sources, wh)` and `take_in_folder(settings, folder, wh)` are the entry points
(the CLI's `optimus intake` and the daemon's incoming folder); `encrypt.encrypt_delivery` makes a
delivery from a plain sample so that the loop can be shown without real data.
"""

from __future__ import annotations

from optimus.intake.delivery import IntakeError, IntakeReport, take_in, take_in_folder
from optimus.intake.gpg import DecryptError, GnuPGError

__all__ = ["take_in", "take_in_folder", "IntakeReport", "IntakeError", "DecryptError", "GnuPGError"]
