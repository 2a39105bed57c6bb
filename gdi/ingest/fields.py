"""Mapping members' field names and values onto a collection's schema.

Members call the same thing STRASSE, Straße or addr:street, and a farm shop
Hofladen, Bauernladen or farm. The alias table and the category vocabulary of
the collection YAML decide; nothing unknown is silently dropped: unmapped
fields are named in the report and kept in the stored original upload.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pandas as pd

from gdi.collections import Collection, fold
from gdi.ingest.encoding import clean_text


@dataclass
class FieldMapping:
    sources: dict[str, list[str]] = field(default_factory=dict)    # target → source columns, in preference order
    unknown: list[str] = field(default_factory=list)               # source columns not mapped to anything


def plan_mapping(columns: list[str], collection: Collection) -> FieldMapping:
    by_fold: dict[str, list[str]] = {}
    for col in columns:
        by_fold.setdefault(fold(col), []).append(col)
    mapping = FieldMapping()
    used: set[str] = set()
    for prop in collection.input_properties():
        sources: list[str] = []
        for alias in prop.aliases:
            for col in by_fold.get(fold(alias), []):
                if col not in sources and col not in used:
                    sources.append(col)
        if sources:
            mapping.sources[prop.name] = sources
            used.update(sources)
    mapping.unknown = [c for c in columns if c not in used]
    return mapping


def map_category(value: object, index: dict[str, str]) -> str | None:
    """A member's spelling → vocabulary id; also tries the parts of 'a;b' and 'a / b'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    key = fold(text)
    if key in index:
        return index[key]
    for part in re.split(r"[;,/|]", text):
        k = fold(part)
        if k in index:
            return index[k]
    return None


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT or (isinstance(v, str) and not v.strip())


def coerce(value: object, ptype: str) -> object:
    """A value of the schema's type; raises ValueError when it cannot be one."""
    if _is_missing(value):
        return None
    if ptype == "string":
        if isinstance(value, float) and value.is_integer():
            value = int(value)          # postcodes and house numbers read as numbers
        return clean_text(str(value))
    if ptype == "integer":
        if isinstance(value, bool):
            raise ValueError(f"'{value}' is not a whole number")
        if isinstance(value, (int,)):
            return int(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"'{value}' is not a whole number")
            return int(value)
        text = str(value).strip().replace("\u00a0", "").replace(" ", "").replace(".", "")
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"'{value}' is not a whole number")
        return int(text)
    if ptype == "number":
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().replace(" ", "")
        if "," in text:
            text = text.replace(".", "").replace(",", ".")
        return float(text)
    if ptype == "boolean":
        key = fold(str(value))
        if key in {"1", "true", "ja", "yes", "j", "y", "wahr"}:
            return True
        if key in {"0", "false", "nein", "no", "n", "falsch"}:
            return False
        raise ValueError(f"'{value}' is not yes/no")
    return clean_text(str(value))


@dataclass
class MappedRow:
    values: dict[str, object]
    problems: list[str]


def map_rows(frame: pd.DataFrame, collection: Collection, mapping: FieldMapping) -> list[MappedRow]:
    """Each source row as schema values, with the reasons it cannot be accepted."""
    index = collection.category_index()
    records = frame.drop(columns=[frame.geometry.name] if hasattr(frame, "geometry") else []).to_dict("records")
    rows: list[MappedRow] = []
    for rec in records:
        values: dict[str, object] = {}
        problems: list[str] = []
        for prop in collection.input_properties():
            sources = mapping.sources.get(prop.name, [])
            if prop.vocabulary:
                raw_first = next((rec[s] for s in sources if not _is_missing(rec[s])), None)
                mapped = next((c for c in (map_category(rec[s], index) for s in sources) if c), None)
                values[prop.name] = mapped
                if mapped is None and prop.required:
                    if raw_first is None:
                        problems.append(f"no {prop.name} given")
                    else:
                        problems.append(f"{prop.name} '{clean_text(str(raw_first))}' is not in the vocabulary")
                continue
            raw = next((rec[s] for s in sources if not _is_missing(rec[s])), None)
            try:
                value = coerce(raw, prop.type)
            except (ValueError, TypeError) as exc:
                problems.append(f"{prop.name}: {exc}")
                value = None
            if value is not None and prop.pattern and not re.fullmatch(prop.pattern, str(value)):
                problems.append(f"{prop.name} '{value}' does not match the required form")
            if value is None and prop.required and not any(p.startswith(prop.name) for p in problems):
                problems.append(f"no {prop.name} given")
            values[prop.name] = value
        rows.append(MappedRow(values, problems))
    return rows
