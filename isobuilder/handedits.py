"""The hand-edit rule, for every file isobuild writes in a node folder: a hand edit is kept (and
packaged) while what isobuild generates for that file is unchanged, refused when a change would
overwrite it, and replaced only with ``force``. Never overwritten or ignored silently. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from isobuilder import keyscan, pki, serialize
from isobuilder.errors import IsobuildError


def is_hand_edited(recorded: str | None, on_disk: bytes | None) -> bool:
    """``on_disk`` is not what isobuild wrote last (``recorded``: its sha256)."""
    return on_disk is not None and serialize.sha256(on_disk) != recorded


def hand_edit_rule(recorded: str | None, on_disk: bytes | None, generated: bytes, *, force: bool, where: str) -> bytes:
    """The user data the drive carries. A hand edit is kept while what isobuild generates for
    it did not change; a change that would overwrite it is refused without ``force``."""
    if force or on_disk is None or not is_hand_edited(recorded, on_disk):
        return generated
    if serialize.sha256(generated) != recorded:
        raise IsobuildError(
            f"{where} was edited by hand and this change would overwrite it",
            hint="re-run with --force to replace it (your edit is lost), or `isobuild image` to ship your edit as is",
        )
    return on_disk


def keep_or_refuse(
    where: str, on_disk: bytes | None, recorded: str | None, generated: bytes, *, force: bool, run_from: str | None
) -> bytes | None:
    """Any other generated file: the hand edit to keep, or None (no edit, a record from before
    isobuild kept one, or ``force``). ``run_from``: the file is a copy no node runs, and an edit
    belongs there instead: refused."""
    if force or on_disk is None or recorded is None or on_disk == generated:
        return None
    if serialize.sha256(on_disk) == recorded:
        return None  # isobuild's own output
    if run_from is not None:
        raise IsobuildError(
            f"{where} was edited by hand, but nodes never run this copy: the drive carries its own",
            hint=f"make the edit in {run_from} (kept, and packaged by isobuild image), then restore it; "
            "or re-run with --force to drop your edit",
        )
    if serialize.sha256(generated) != recorded:
        raise IsobuildError(
            f"{where} was edited by hand and this change would overwrite it",
            hint="undo the edit, or replace it: isobuild node NAME --force, or build NAME --force (your edit is lost)",
        )
    return on_disk


def foreign_keys(drive: Mapping[str, bytes], ssl_keys: Mapping[str, bytes]) -> list[str]:
    """Drive paths holding a private key (as cloud-init or Ignition would decode it) that is not
    one of the node's own, the keys of its ``ssl/``: a medium never carries another's key."""
    own = {key for pem in ssl_keys.values() for key in pki.private_keys_in(pem)}
    return sorted(path for path, data in drive.items() if keyscan.private_key_ids(data) - own)


def refuse_foreign_keys(folder: str, drive_dir: str, drive: Mapping[str, bytes], ssl_keys: Mapping[str, bytes]) -> None:
    found = foreign_keys(drive, ssl_keys)
    if found:
        raise IsobuildError(
            f"{folder}/{drive_dir}/{found[0]} holds a private key that is not this node's own",
            hint="a drive carries only the keys isobuild puts there; remove it (the node's keys are in its ssl/)",
        )
