"""The typed report's values as documents show them, by each field's unit (model.fig):
GPU-seconds as GPU-hours rounded to 1/1000, ratios to 4 decimals, days and instants as
ISO text, warnings as sentences. The JSON document is the report converted field by
field under each field's document key; the tables take the same values and the
field's label.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from collector.engine.model import Fig, PlanWarning, Record


def warning_text(w: PlanWarning) -> str:
    if w.kind == "used up":
        return "budget used up"
    if w.kind == "unused":
        return f"projected to leave {w.ratio:.0%} of the budget unused"
    return f"{w.kind}: {w.ratio:.0%} of the linear plan to date"


def convert(value: Any, unit: str, timezone: str) -> Any:
    """One value in document terms (what JSON holds and tables show)."""
    if value is None:
        return None
    if unit in ("gpu_s", "wait_s"):
        return round(value / 3600, 3)
    if unit in ("grant_s", "span_s"):
        return value / 3600
    if unit == "joules":
        return round(value / 3.6e6, 3)
    if unit in ("ratio", "rate"):
        return round(value, 4)
    if unit == "date":
        return value.isoformat() if isinstance(value, date) else value
    if unit == "instant":
        return datetime.fromtimestamp(value, ZoneInfo(timezone)).isoformat(timespec="seconds")
    if unit == "mapping":
        return {k: list(v) if isinstance(v, tuple) else v for k, v in value}
    if unit == "warnings":
        return [warning_text(w) for w in value]
    if unit == "list":
        return list(value)
    return value


@cache
def fields_of(cls: type) -> tuple[tuple[str, Fig], ...]:
    """(name, Fig) of each shown field of a report type, in the order declared."""
    return tuple((name, cls.__figures__[name]) for name in cls.__struct_fields__
                 if name in cls.__figures__)


@cache
def field_of(cls: type, name: str) -> Fig:
    for field_name, shown in fields_of(cls):
        if field_name == name:
            return shown
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def label(cls: type, name: str) -> str:
    return field_of(cls, name).label


def key(cls: type, name: str) -> str:
    return field_of(cls, name).key


def unit(cls: type, name: str) -> str:
    return field_of(cls, name).unit


def to_json(obj: Any, timezone: str) -> Any:
    """The typed report (or any part of it) as the JSON document: nested dicts and
    lists under the fields' document keys; fields without one are left out."""
    if isinstance(obj, tuple | list):
        return [to_json(o, timezone) for o in obj]
    if not isinstance(obj, Record):
        return obj
    out = {}
    for name, shown in fields_of(type(obj)):
        if shown.key is None:
            continue
        value = getattr(obj, name)
        out[shown.key] = (to_json(value, timezone) if shown.unit == "part"
                          else convert(value, shown.unit, timezone))
    return out


def row(obj: Any, columns: tuple[str, ...], timezone: str) -> dict[str, Any]:
    """One table row: the named fields of a typed row, converted."""
    cls = type(obj)
    return {c: convert(getattr(obj, c), unit(cls, c), timezone) for c in columns}


def _key_labels() -> dict[str, str]:
    """Document key -> label, over every row type of the report (the dashboard's tables
    are named by document keys)."""
    from collector.engine import model

    out: dict[str, str] = {}
    for cls in vars(model).values():
        if isinstance(cls, type) and issubclass(cls, Record):
            for _name, shown in fields_of(cls):
                if shown.key and shown.unit != "part":
                    out.setdefault(shown.key, shown.label)
    return out


KEY_LABELS = _key_labels()


def document(report: Any) -> dict:
    """The whole report (or a PI's) as its JSON document, as a dict."""
    return to_json(report, report.period.timezone)
