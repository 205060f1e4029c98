"""Field readers shared by the doors that receive structured values (slurmrestd's JSON,
pyslurm's objects): every value is checked for its type and range, and a wrong one
raises `FieldError` naming the field, so the record is rejected with that reason."""

from __future__ import annotations

from typing import Any

from collector.slurm.sacct_parser import FieldError


def number(value: Any, name: str) -> int | None:
    """An integer field: plain (v0.0.38, pyslurm) or `{"set": .., "number": ..}`
    (slurmrestd v0.0.39+); None when unset or infinite."""
    if value is None:
        return None
    if isinstance(value, dict):
        if not value.get("set", False) or value.get("infinite", False):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"{name} {value!r} is not a number")
    if not 0 <= value < 10**15:
        raise FieldError(f"{name} {value} is out of range")
    return value


def text(record: dict, key: str) -> str:
    """A text field ("" when missing); anything but a string is refused."""
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FieldError(f"{key} {value!r} is not text")
    return value
