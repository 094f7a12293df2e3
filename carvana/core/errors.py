"""One error type for bad input, and the entry-point wrapper that turns it into one clear line."""

import sys
from collections.abc import Callable, Sequence

from carvana.core.interrupts import Interrupted, interruptible


class CarvanaError(Exception):
    """Bad input or environment: the message names the file or key and says how to fix it."""


def list_some(items: Sequence[object], limit: int = 5) -> str:
    """'a, b, c (and 7 more)': the first few offenders and a count, for error messages."""
    shown = ", ".join(str(item) for item in items[:limit])
    rest = len(items) - limit
    return f"{shown} (and {rest} more)" if rest > 0 else shown


def run_main(main: Callable[[], None]) -> None:
    """Run a stage's main(); a CarvanaError exits 2 with its message instead of a traceback, SIGINT/SIGTERM
    exit 128 + the signal number."""
    try:
        with interruptible():
            main()
    except CarvanaError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as interrupt:
        print(f"stopped by {interrupt}", file=sys.stderr)
        sys.exit(128 + interrupt.signum)
