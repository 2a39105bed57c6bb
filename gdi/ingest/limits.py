"""The declared limits of one upload file: columns, features, nesting depth, line length.

A file over a limit is refused as a whole, with the limit named and where to change
it (``config/gdi.yml``, section ``ingest``), before its values are mapped — a hostile
or broken file (100,000 columns, a 200 MB CSV line, arrays nested 10,000 deep) never
reaches the store or a reader. The limits come from the settings; nothing here has
its own default.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gdi.ingest import IngestRefused
from gdi.messages import de_number, t

_ESCAPE = re.compile(r"\\.", re.S)
_STRING = re.compile(r'"[^"]*"')
_WHERE_DE = "(Grenze in config/gdi.yml, ingest.{key})"
_WHERE_EN = "(limit in config/gdi.yml, ingest.{key})"


@dataclass(frozen=True)
class FileLimits:
    max_file_bytes: int
    max_unpacked_bytes: int          # an archive, unpacked
    max_zip_entries: int
    max_columns: int
    max_features: int
    max_nesting_depth: int
    max_line_bytes: int

    @classmethod
    def of(cls, ingest) -> FileLimits:
        """The limits of the ``ingest`` settings section (gdi.settings.Ingest)."""
        return cls(**{name: getattr(ingest, name) for name in cls.__dataclass_fields__})


def _refuse(de: str, en: str, key: str) -> IngestRefused:
    return IngestRefused(t(f"{de} {_WHERE_DE.format(key=key)}", f"{en} {_WHERE_EN.format(key=key)}"))


def check_lines(data: bytes, name: str, limit: int) -> None:
    """A text table whose longest line is over ``limit`` bytes is refused (counted with numpy: GB/s)."""
    if len(data) <= limit:
        return
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A)
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(data)]))
    lengths = stops - starts
    longest = int(lengths.max())
    if longest > limit:
        line = int(np.argmax(lengths)) + 1
        raise _refuse(f"{name}: Zeile {de_number(line)} ist {de_number(longest)} Bytes lang, "
                      f"mehr als die erlaubten {de_number(limit)}",
                      f"{name}: line {line:,} is {longest:,} bytes long, more than the limit of {limit:,}",
                      "max_line_bytes")


def check_size(frame: pd.DataFrame, name: str, limits: FileLimits) -> None:
    """Columns (without the geometry) and features within their limits."""
    columns = len([c for c in frame.columns if c != getattr(frame, "_geometry_column_name", None)])
    if columns > limits.max_columns:
        raise _refuse(f"{name} hat {de_number(columns)} Spalten, "
                      f"mehr als die erlaubten {de_number(limits.max_columns)}",
                      f"{name} has {columns:,} columns, more than the limit of {limits.max_columns:,}",
                      "max_columns")
    if len(frame) > limits.max_features:
        raise _refuse(f"{name} enthält {de_number(len(frame))} Objekte, "
                      f"mehr als die erlaubten {de_number(limits.max_features)}",
                      f"{name} holds {len(frame):,} features, more than the limit of {limits.max_features:,}",
                      "max_features")


def nesting_depth(text: str) -> int:
    """How deep ``[``/``{`` nest in a JSON text (brackets inside strings do not count).

    Escapes and strings are cut out with regular expressions and the brackets counted with
    numpy, so a value of many megabytes takes milliseconds, not a Python loop per character.
    """
    bare = _STRING.sub("", _ESCAPE.sub("", text)).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = np.zeros(len(codes), dtype=np.int64)
    steps[(codes == 0x5B) | (codes == 0x7B)] = 1
    steps[(codes == 0x5D) | (codes == 0x7D)] = -1
    return int(np.cumsum(steps).max(initial=0))


def too_deep(name: str, depth: int, limit: int) -> IngestRefused:
    return _refuse(f"{name}: Werte sind {de_number(depth)} Ebenen tief verschachtelt, "
                   f"mehr als die erlaubten {de_number(limit)}",
                   f"{name}: values are nested {depth:,} levels deep, more than the limit of {limit:,}",
                   "max_nesting_depth")


def check_nesting(frame: pd.DataFrame, name: str, limit: int) -> None:
    """Nested property values (GDAL gives GeoJSON objects and arrays as JSON text) within the depth limit."""
    for column in frame.columns:
        series = frame[column]
        if series.dtype != object:
            continue
        nested = series[series.map(lambda v: isinstance(v, (str, list, dict))
                                   and (not isinstance(v, str) or v[:1] in ("[", "{")))]
        for value in nested.tolist():
            try:
                text = value if isinstance(value, str) else json.dumps(value)
            except RecursionError:          # deeper than json itself goes: deeper than any limit
                raise too_deep(name, limit + 1, limit) from None
            if len(text) > limit:           # fewer characters than the limit cannot nest deeper
                depth = nesting_depth(text)
                if depth > limit:
                    raise too_deep(name, depth, limit)

