"""Checking a stored record against the schema's field types, so that one bad file is named and skipped.

A record written by this harness always passes; one edited by hand, written by an older or foreign tool, or
damaged may hold a string where the schema says a number (`"test_error": "0.1"`). Left in, such a value
reaches pandas and the fits as an object column and crashes them far from the file (a `TypeError` that names
no record), or breaks the resume lookup. The check is generic over `RunRecord`'s annotations: a field added to
the schema is checked without a change here.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

from harness.results.schema import RunRecord


class BadRecord(TypeError):
    """A stored record whose content is not a run record of this schema (one line: which field, what)."""


@functools.cache
def _field_types() -> dict[str, tuple[type, ...]]:
    """The Python types JSON may hold for each field (None allowed for every field: null means no value)."""
    hints = typing.get_type_hints(RunRecord)
    return {f.name: _json_types(hints[f.name]) for f in dataclasses.fields(RunRecord)}


def _json_types(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) if arg is not type(None) for t in _json_types(arg))
    if origin is not None:  # list[int], dict[str, ...]: the container is what JSON tells apart
        return (origin,)
    if hint is float:
        return (float, int)  # JSON writes 1.0 as 1 only by hand, but a number is a number
    if hint is Any:
        return (object,)
    return (hint,)


def type_problem(data: Any) -> str | None:
    """Why `data` (a parsed run.json) is not a record of this schema (every wrong field, in one line);
    None when it is."""
    if not isinstance(data, dict):
        return f"a run record is a JSON object, not {type(data).__name__}"
    problems = []
    for name, allowed in _field_types().items():
        value = data.get(name)
        if value is None:
            continue
        # bool is an int to Python, never to the schema: `"steps": true` is not a count.
        wrong_bool = isinstance(value, bool) and bool not in allowed
        if wrong_bool or not isinstance(value, allowed):
            wanted = " or ".join(t.__name__ for t in allowed if t is not int or float not in allowed)
            problems.append(f"field {name} is {type(value).__name__} {_short(value)}, not {wanted}")
    return "; ".join(problems) or None


def allows(field: str, kind: type) -> bool:
    """Whether values of Python type `kind` pass `type_problem`'s check of `field` (any type passes for a
    name outside the schema): a columnar reader that typed a whole column needs no check row by row."""
    allowed = _field_types().get(field)
    if allowed is None or kind is type(None):
        return True
    if kind is bool:
        return bool in allowed
    return any(issubclass(kind, t) for t in allowed)


def text_fields() -> list[str]:
    """The fields whose values are text, and only text (run_id, started_at, ...)."""
    return [name for name, allowed in _field_types().items() if allowed == (str,)]


def checked_record(data: Any) -> RunRecord:
    """The record `data` holds; BadRecord naming the field when a value has the wrong type."""
    problem = type_problem(data)
    if problem is not None:
        raise BadRecord(problem)
    return RunRecord.from_dict(data)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
