"""Numbers as people read them in tables: three significant digits, intervals in brackets, gaps as a dash."""

from __future__ import annotations

import math
import numbers

import pandas as pd

from harness.settings import FRONTIER


def number(value, digits: int = 3) -> str:
    """`value` to `digits` significant digits; NaN/None as '–', infinities as '∞'."""
    if value is None:
        return "–"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def interval(value, low, high, digits: int = 3, *, unbounded: bool = False) -> str:
    """'v [low, high]'; when the bounds are missing, 'v' (or 'v [unbounded]' if that is what they mean)."""
    if all(_missing(v) for v in (low, high)) and not unbounded:
        return number(value, digits)
    return f"{number(value, digits)} {bounds(low, high, digits)}"


def bounds(low, high, digits: int = 3) -> str:
    """'[low, high]', or '[unbounded]' when neither bound is known."""
    if all(_missing(v) for v in (low, high)):
        return "[unbounded]"
    return f"[{number(low, digits)}, {number(high, digits)}]"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def frontier_label(text: str, points) -> str:
    """`text` marked when its fit used the compute-efficient frontier only ("poly" -> "poly (frontier)");
    in a holdout model such as "poly: formula" the mark goes before the first colon."""
    if points != FRONTIER:
        return text
    head, colon, rest = text.partition(":")
    return f"{head} ({FRONTIER}){colon}{rest}"


def holdout_frame(rows: list[dict]) -> pd.DataFrame:
    """Holdout rows as a table; `model` names the frontier fits' checks apart ("poly (frontier): ...")."""
    frame = pd.DataFrame(rows)
    if "points" in frame.columns:
        frame["model"] = [frontier_label(m, p) for m, p in zip(frame["model"], frame["points"], strict=True)]
    return frame
