"""Ranges typed on the command line: ``FIRST:LAST[:STEP]``, LAST included."""

from __future__ import annotations

from skbsim.errors import InputError


def parse_range(text: str, option: str, low: int, high: int) -> tuple[int, int, int]:
    """(first, last, step) with low <= first <= last <= high and step >= 1, or InputError naming the option."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InputError(f"{option} {text!r}: expected FIRST:LAST or FIRST:LAST:STEP")
    try:
        numbers = [int(part, 0) for part in parts]
    except ValueError:
        raise InputError(f"{option} {text!r}: FIRST, LAST and STEP must be integers") from None
    first, last = numbers[0], numbers[1]
    step = numbers[2] if len(numbers) == 3 else 1
    if not low <= first <= last <= high:
        raise InputError(f"{option} {text!r}: need {low} <= FIRST <= LAST <= {high}")
    if step < 1:
        raise InputError(f"{option} {text!r}: STEP must be at least 1")
    return first, last, step
