"""The run context: what one command run knows besides the user's request.

The clock (``ISOBUILD_NOW`` overrides it: the tests' injected clock, and a way to ask "what has
expired by then"), the ISO epoch (``SOURCE_DATE_EPOCH``), where the CA passphrase comes from, and
how a new cluster gets its id. Nothing deeper in isobuild reads the environment or the clock.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from isobuilder.errors import IsobuildError
from isobuilder.inventory import Inventory

Prompt = Callable[[bool], str]  # asks for the CA passphrase (True: twice, to create one)
PASSPHRASE_ENV = "ISOBUILD_CA_PASSPHRASE"
CLOCK_ENV = "ISOBUILD_NOW"
EPOCH_ENV = "SOURCE_DATE_EPOCH"
# cryptography writes X.509 times as UTCTime or GeneralizedTime: years 1950 to 9999. Leaves live
# up to 100 years after now, so the clock must leave room for them.
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
_MAX_PASSPHRASE = 1023  # OpenSSL's PEM callbacks take at most 1023 bytes


def no_prompt(confirm: bool) -> str:
    raise IsobuildError(
        "the CA keys are encrypted and no passphrase was given",
        hint=f"set {PASSPHRASE_ENV}, or run the command in a terminal to be asked",
    )


def new_cluster_id() -> str:
    return str(uuid.uuid4())


class Context(NamedTuple):
    """What one command runs with: the inventory, the clock, SOURCE_DATE_EPOCH for the ISOs, the
    passphrase prompt and the source of new cluster ids."""

    inventory: Inventory
    now: dt.datetime
    iso_epoch: float
    prompt: Prompt = no_prompt
    new_id: Callable[[], str] = new_cluster_id  # injectable: golden tests use a fixed cluster id

    @classmethod
    def create(
        cls,
        root: Path,
        now: dt.datetime | None = None,
        environ: Mapping[str, str] = os.environ,
        prompt: Prompt | None = None,
    ) -> Context:
        now = now or clock(environ.get(CLOCK_ENV, ""))
        epoch = _epoch(environ.get(EPOCH_ENV, ""))
        given = environ.get(PASSPHRASE_ENV)
        if given is not None:
            prompt = _given(given)
        return cls(Inventory(root), now, epoch if epoch is not None else now.timestamp(), prompt or no_prompt)

    def passphrase(self, *, confirm: bool = False) -> bytes:
        text = self.prompt(confirm)
        if not text:
            raise IsobuildError("the CA passphrase is empty", hint=f"set {PASSPHRASE_ENV} to a non-empty passphrase")
        data = text.encode("utf-8", "surrogateescape")
        if len(data) > _MAX_PASSPHRASE:
            raise IsobuildError(
                f"the CA passphrase is {len(data)} bytes long", hint=f"use at most {_MAX_PASSPHRASE} bytes"
            )
        return data


def _given(value: str) -> Prompt:
    return lambda confirm: value


def clock(text: str) -> dt.datetime:
    """Now, or the time ``ISOBUILD_NOW`` names (ISO 8601)."""
    if not text:
        return dt.datetime.now(dt.UTC)
    hint = "use ISO 8601 between 1970 and 9000, e.g. 2027-06-01T00:00:00Z"
    try:
        when = dt.datetime.fromisoformat(text[:64])
    except ValueError:
        raise IsobuildError(f"{CLOCK_ENV}={text[:64]!r} is not a date", hint=hint) from None
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    if not _EARLIEST <= when < _LATEST:
        raise IsobuildError(f"{CLOCK_ENV}={text[:64]!r} is out of range", hint=hint)
    return when


def _epoch(text: str) -> float | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 12 and int(text) < int(_LATEST.timestamp())):
        raise IsobuildError(
            f"{EPOCH_ENV}={text[:64]!r} is not a number of seconds", hint="unset it or set it to e.g. $(date +%s)"
        )
    return float(text)
