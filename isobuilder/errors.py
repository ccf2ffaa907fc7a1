"""The one error type of isobuild.

Library code raises :class:`IsobuildError`; only the CLI turns it into
``Error: ...`` plus a hint and exit code 1 (see ``cli.main``).
"""

from __future__ import annotations

# Ctrl-C, wherever it lands: a command changes the inventory in one transaction (inventory.py).
INTERRUPTED_HINT = "the inventory is as it was, or as the command made it (never a mix); isobuild list tells"


class IsobuildError(Exception):
    """A problem the user can fix: one line of message, one line of hint. ``details`` carries
    further problems found in the same pass (each printed as its own ``Error:`` line)."""

    def __init__(self, message: str, hint: str = "", details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return self.message
