"""Command-line arguments checked as they are parsed: a wrong flag or value is one line naming the flag and what it
takes (a CarvanaError, as everywhere else), never a traceback or a silent no-op."""

import argparse
import difflib
import re
from collections.abc import Callable

from carvana.core.errors import CarvanaError

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one CarvanaError line, and a mistyped flag answered with the nearest ones."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            unknown = message.removeprefix("unrecognized arguments:").split()
            flags = [flag for action in self._actions for flag in action.option_strings]
            near = [difflib.get_close_matches(arg.split("=")[0], flags, n=1) for arg in unknown]
            hints = [f"{arg} (did you mean {match[0]}?)" for arg, match in zip(unknown, near) if match]
            if hints:
                message = f"unrecognized arguments: {', '.join(hints)}"
        raise CarvanaError(f"{self.prog}: {message}")


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in low..high (high: no bound when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a whole number {span}")
        return value

    parse.__name__ = "whole number"
    return parse


positive = bounded_int(1)
non_negative = bounded_int(0)
port = bounded_int(1, 65535)


def number_above(low: float, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a number above `low` (or equal to it, when inclusive)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(
                f"{value:g} is out of range: give a number {'≥' if inclusive else '>'} {low:g}"
            )
        return value

    parse.__name__ = "number"
    return parse


positive_number = number_above(0, inclusive=False)
non_negative_number = number_above(0, inclusive=True)


def probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a probability: give a number between 0 and 1")
    return value


def device_choice(text: str) -> str:
    """An argparse type: auto, cpu, cuda or cuda:N (whether CUDA is there is checked when the model loads)."""
    if not DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: give auto, cpu, cuda or cuda:N")
    return text
