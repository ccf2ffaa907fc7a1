"""The ``isobuild`` program: the console script and ``python -m isobuilder``.

What is set here is the process's, not the library's (tests call :func:`isobuilder.cli.main`
in-process and keep Python's defaults): it is set before the CLI and its libraries load.
"""

import gc
import os
import sys

from isobuilder.errors import INTERRUPTED_HINT

# The cyclic garbage collector runs after every 100,000 new container objects instead of 700. A
# command's start imports ~350 modules whose ~10^5 objects all stay alive, and each collection
# walked them again: 3% of an `isobuild node` (scripts/bench.py). What a command frees, reference
# counting frees; cycles are still collected, later, so memory stays bounded.
GC_THRESHOLD = 100_000


def run() -> None:
    """Run the CLI and exit without the interpreter's teardown (freeing some 400 modules one by
    one: ~30 ms of every command, see scripts/bench.py). By then every file isobuild wrote is
    closed and fsynced, and no thread of its own is left but the daemon making keys ahead;
    stdout and stderr are flushed here. Ctrl-C where :func:`isobuilder.cli.main` does not turn it
    into its own error (while the CLI loads, or once the command is done) is the same error."""
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        from isobuilder.cli import main

        code = main()
        flushed = _flush()
    except KeyboardInterrupt:
        print(f"Error: interrupted\nHint: {INTERRUPTED_HINT}", file=sys.stderr)
        os._exit(130)
    if not flushed:  # e.g. a reader gone from the pipe: exit the usual way
        sys.exit(code)
    os._exit(code)


def _flush() -> bool:
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started with the descriptor closed
                stream.flush()
    except (OSError, ValueError):
        return False
    return True


if __name__ == "__main__":
    run()
