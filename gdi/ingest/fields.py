"""Mapping members' field names and values onto a collection's schema.

Members call the same thing STRASSE, Straße or addr:street, and a farm shop
Hofladen, Bauernladen or farm. The alias table and the category vocabulary of
the collection YAML decide; nothing unknown is silently dropped: unmapped
fields are named in the report and kept in the stored original upload.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gdi.collections import Collection, Property, fold
from gdi.ingest.encoding import clean_text
from gdi.messages import Text, de_number, t, text_of


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
            raise ValueError(_not_whole(value))
        if isinstance(value, (int,)):
            return int(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(_not_whole(value))
            return int(value)
        text = str(value).strip().replace("\u00a0", "").replace(" ", "").replace(".", "")
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(_not_whole(value))
        return int(text)
    if ptype == "number":
        if isinstance(value, (int, float)):
            number = float(value)
        else:
            text = str(value).strip().replace(" ", "")
            if "," in text:
                text = text.replace(".", "").replace(",", ".")
            try:
                number = float(text)
            except ValueError as exc:
                raise ValueError(t(f"‚{_short(str(value))}‘ ist keine Zahl", str(exc))) from None
        if not math.isfinite(number):
            raise ValueError(t(f"‚{_short(str(value))}‘ ist keine Zahl (NaN, Infinity oder jenseits von ±1,8e308)",
                               f"'{_short(str(value))}' is not a number (NaN, Infinity or beyond ±1.8e308)"))
        return number
    if ptype == "boolean":
        key = fold(str(value))
        if key in {"1", "true", "ja", "yes", "j", "y", "wahr"}:
            return True
        if key in {"0", "false", "nein", "no", "n", "falsch"}:
            return False
        raise ValueError(t(f"‚{value}‘ ist weder ja noch nein", f"'{value}' is not yes/no"))
    if ptype == "date":
        return _date(value)
    if ptype == "datetime":
        return _datetime(value)
    if ptype == "uri":
        return _uri(clean_text(str(value)))
    return clean_text(str(value))


_LOCAL = ZoneInfo("Europe/Berlin")      # members' files give local times without a zone
_GERMAN_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_HOST = re.compile(r"(?:[\w-]+\.)+[a-z]{2,}(?:[/?#]\S*)?", re.IGNORECASE)


def _date(value: object) -> str:
    """YYYY-MM-DD from a date, a timestamp, ISO text or German DD.MM.YYYY."""
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    m = _GERMAN_DATE.fullmatch(text)
    try:
        if m:
            return dt.date(int(m[3]), int(m[2]), int(m[1])).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.date.fromisoformat(text).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]00:00(:00)?", text):
            return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        pass
    raise ValueError(t(f"‚{_short(text)}‘ ist kein Datum (JJJJ-MM-TT oder TT.MM.JJJJ)",
                       f"'{_short(text)}' is not a date (YYYY-MM-DD or DD.MM.YYYY)"))


def _datetime(value: object) -> str:
    """The UTC form YYYY-MM-DDTHH:MM:SSZ (what the API filters on); times without zone are local."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        m = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ ,]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?", text)
        try:
            if m:
                moment = dt.datetime(int(m[3]), int(m[2]), int(m[1]), int(m[4] or 0), int(m[5] or 0), int(m[6] or 0))
            else:
                moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(t(f"‚{_short(text)}‘ ist keine Datums- und Zeitangabe (ISO 8601 oder TT.MM.JJJJ HH:MM)",
                               f"'{_short(text)}' is not a date and time (ISO 8601 or DD.MM.YYYY HH:MM)")) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_LOCAL)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uri(text: str) -> str:
    """An absolute http(s), ftp or mailto URI; a bare host name (www.hof.de) gets https://."""
    if _HOST.fullmatch(text):
        text = "https://" + text
    parts = urlsplit(text)
    if (parts.scheme in {"http", "https", "ftp"} and parts.netloc and " " not in text) or \
            (parts.scheme == "mailto" and "@" in parts.path):
        return text
    raise ValueError(t(f"‚{_short(text)}‘ ist keine Webadresse (https://…)",
                       f"'{_short(text)}' is not a web address (https://…)"))


def _not_whole(value: object) -> Text:
    return t(f"‚{value}‘ ist keine ganze Zahl", f"'{value}' is not a whole number")


def _not_given(name: str) -> Text:
    return t(f"{name} fehlt", f"no {name} given")


def _wrong_form(name: str, value: str) -> Text:
    return t(f"{name} ‚{value}‘ hat nicht die verlangte Form", f"{name} '{value}' does not match the required form")


def _short(text: str, limit: int = 40) -> str:
    """A value as shown in a message: never the whole of a huge one."""
    return text if len(text) <= limit else text[:limit] + "…"


def _over_length(prop: Property, limit: int, value: str) -> tuple[Text, str]:
    """A text over its limit: the note, and the value kept — cut to the limit where the property
    says truncate (a repair), else a short excerpt for the report (the feature is rejected)."""
    if prop.truncate:
        return t(f"{prop.name} auf {de_number(limit)} Zeichen gekürzt (waren {de_number(len(value))})",
                 f"{prop.name} cut to {limit:,} characters (was {len(value):,})"), value[:limit]
    return t(f"{prop.name} ist länger als {de_number(limit)} Zeichen ({de_number(len(value))})",
             f"{prop.name} is longer than {limit:,} characters ({len(value):,})"), _short(value)


def _too_long(values: np.ndarray, limit: int) -> np.ndarray:
    """Rows whose text value is longer than limit characters (counted by Arrow: every text property
    is checked, so this runs over every value of an upload)."""
    try:
        lengths = pc.fill_null(pc.utf8_length(pa.array(values, type=pa.string(), from_pandas=True)), 0)
        lengths = lengths.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):      # a value that is not text: counted one by one
        lengths = pd.Series(values, dtype=object).map(lambda v: len(v) if isinstance(v, str) else 0).to_numpy()
    return np.nonzero(lengths > limit)[0]


# -- columnar mapping (the ingest hot path) -----------------------------------
# The per-value rules (coerce, pattern, vocabulary), evaluated once per *distinct* source value and
# broadcast to all rows with numpy: a 100,000-row upload has a few thousand
# distinct values per column, and no Python loop runs per feature.

_HOMOGENEOUS = {"string", "integer", "floating", "boolean", "empty", "datetime", "datetime64", "date", "bytes",
                "decimal", "timedelta", "time", "period"}


def _objects(series: pd.Series) -> np.ndarray:
    """The column as Python objects (as a per-row reading would see them)."""
    return np.asarray(series.astype(object).to_numpy(), dtype=object)


def _factorized(values: np.ndarray, fn) -> tuple[np.ndarray, list]:
    """(codes, results): results[codes[i]] == fn(values[i]); fn runs once per distinct value.

    NA (None/NaN/NaT/pd.NA) is passed to fn as None. Columns of mixed Python types
    (where 1 == 1.0 == True would collide) are keyed by (type, value).
    """
    kind = pd.api.types.infer_dtype(values, skipna=True) if len(values) else "empty"
    if kind in _HOMOGENEOUS:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        results = [fn(u) for u in uniques]
        results.append(fn(None))
        codes = np.where(codes < 0, len(results) - 1, codes)
        return codes, results
    memo: dict = {}
    results = []
    codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            key = None
        else:
            try:
                key = (type(v), v)
                hash(key)
            except TypeError:
                key = (type(v), id(v))
        j = memo.get(key)
        if j is None:
            j = memo[key] = len(results)
            results.append(fn(None if key is None else v))
        codes[i] = j
    return codes, results


def _per_value(values: np.ndarray, fn) -> np.ndarray:
    codes, results = _factorized(values, fn)
    table = np.empty(len(results), dtype=object)
    for j, r in enumerate(results):
        table[j] = r
    return table[codes]


def _column(codes: np.ndarray, results: list, k: int) -> np.ndarray:
    table = np.empty(len(results), dtype=object)
    for j, r in enumerate(results):
        table[j] = r[k]
    return table[codes]


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """_is_missing for a whole column: vectorised for text and numbers, per distinct value otherwise."""
    kind = pd.api.types.infer_dtype(values, skipna=True) if len(values) else "empty"
    series = pd.Series(values, dtype=object)
    if kind == "string":
        return (series.isna() | series.str.strip().eq("")).to_numpy(dtype=bool)
    if kind in {"empty", "integer", "floating", "mixed-integer-float", "boolean", "decimal"}:
        return series.isna().to_numpy(dtype=bool)
    return _per_value(values, _is_missing).astype(bool)


_ASCII_SPACE = "".join(c for c in map(chr, range(128)) if c.isspace())   # what str.strip() removes there


def _clean_text_column(series: pd.Series) -> np.ndarray | None:
    """clean_text() of every value of a text column (None where absent or blank), or None when the
    column is not text. ASCII values (NFC already) are trimmed in Arrow; the others go through
    clean_text itself, so the result is exactly the per-value one."""
    if series.dtype == object or not pd.api.types.is_string_dtype(series.dtype):
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(series)
    ascii_ = pc.fill_null(pc.string_is_ascii(arr), True).to_numpy(zero_copy_only=False)
    trimmed = pc.utf8_trim(arr, characters=_ASCII_SPACE)
    out = np.array(trimmed.to_numpy(zero_copy_only=False), dtype=object)
    out[pc.fill_null(pc.equal(trimmed, ""), False).to_numpy(zero_copy_only=False)] = None
    other = np.nonzero(~ascii_)[0]
    if len(other):
        out[other] = [clean_text(v) for v in arr.take(pa.array(other)).to_pylist()]
    return out


def _pattern_failures(values: np.ndarray, pattern: str) -> np.ndarray:
    """Rows whose (non-null) value does not match the property's pattern in full."""
    rx = re.compile(pattern)
    given = np.nonzero(np.not_equal(values, None))[0]
    ok = np.fromiter((rx.fullmatch(str(v)) is not None for v in values[given]), dtype=bool, count=len(given))
    return given[~ok]


@dataclass
class MappedColumns:
    values: dict[str, np.ndarray]             # property → object array, one value per source row
    problems: dict[int, list[Text]]           # row index → reasons it cannot be accepted (rows without: absent)
    repairs: dict[int, list[Text]] = field(default_factory=dict)   # row index → values cut to their limit

    def __len__(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def row(self, i: int) -> dict[str, object]:
        return {name: col[i] for name, col in self.values.items()}


def map_columns(frame: pd.DataFrame, collection: Collection, mapping: FieldMapping,
                text_limit: int) -> MappedColumns:
    """Each source row as schema values, with the reasons it cannot be accepted (columnar, per distinct value).

    ``text_limit`` is the length of a text property without its own max_length (settings
    ingest.max_text_length): a longer value rejects its feature, or is cut and reported as a
    repair where the property says ``truncate: true`` — it is never stored unchecked.
    """
    n = len(frame)
    sources_cache: dict[str, np.ndarray] = {}
    missing_cache: dict[str, np.ndarray] = {}
    text_cache: dict[str, np.ndarray | None] = {}

    def col(name: str) -> np.ndarray:
        if name not in sources_cache:
            sources_cache[name] = _objects(frame[name])
        return sources_cache[name]

    def text(name: str) -> np.ndarray | None:
        if name not in text_cache:
            text_cache[name] = _clean_text_column(frame[name])
        return text_cache[name]

    def missing(name: str) -> np.ndarray:
        if name not in missing_cache:
            cleaned = text(name)
            missing_cache[name] = (np.equal(cleaned, None).astype(bool) if cleaned is not None
                                   else _missing_mask(col(name)))
        return missing_cache[name]

    def first_present(sources: list[str]) -> np.ndarray:
        out = np.full(n, None, dtype=object)
        for s in reversed(sources):
            present = ~missing(s)
            out[present] = col(s)[present]
        return out

    values: dict[str, np.ndarray] = {}
    problems: dict[int, list[Text]] = {}
    repairs: dict[int, list[Text]] = {}

    def add(rows: np.ndarray, texts: np.ndarray | Text) -> None:
        for k, i in enumerate(rows.tolist()):
            problems.setdefault(i, []).append(texts if isinstance(texts, str) else texts[k])

    for prop in collection.input_properties():
        sources = mapping.sources.get(prop.name, [])
        if prop.vocabulary:
            index = collection.vocabulary_index(prop.vocabulary)
            mapped = np.full(n, None, dtype=object)
            for s in reversed(sources):
                m = _per_value(col(s), lambda v: map_category(v, index))
                hit = np.not_equal(m, None).astype(bool)
                mapped[hit] = m[hit]
            values[prop.name] = mapped
            if prop.required:
                failing = np.nonzero(np.equal(mapped, None))[0]
                if len(failing):
                    raw_first = first_present(sources)[failing]
                    add(failing, np.array([_not_given(prop.name) if r is None else
                                           t(f"{prop.name} ‚{clean_text(str(r))}‘ steht nicht in der Werteliste",
                                             f"{prop.name} '{clean_text(str(r))}' is not in the vocabulary")
                                           for r in raw_first], dtype=object))
            continue
        if prop.type == "string" and sources and all(text(s) is not None for s in sources):
            # text into text: the first non-blank source, cleaned (what convert() below does per value)
            vals = np.full(n, None, dtype=object)
            for s in reversed(sources):
                present = ~missing(s)
                vals[present] = text(s)[present]
            limit = prop.length_limit(text_limit)
            if limit:
                for i in _too_long(vals, limit).tolist():
                    note, vals[i] = _over_length(prop, limit, vals[i])
                    (repairs if prop.truncate else problems).setdefault(i, []).append(note)
            if prop.pattern:
                for i in _pattern_failures(vals, prop.pattern).tolist():
                    problems.setdefault(i, []).append(_wrong_form(prop.name, _short(vals[i])))
            values[prop.name] = vals
            if prop.required:
                for i in np.nonzero(np.equal(vals, None))[0].tolist():
                    problems.setdefault(i, []).append(_not_given(prop.name))
            continue
        raw = first_present(sources)

        def convert(v, prop=prop, limit=prop.length_limit(text_limit)):
            found: list[Text] = []
            cut: list[Text] = []
            try:
                value = coerce(v, prop.type)
            except (ValueError, TypeError) as exc:
                why = text_of(exc)
                found.append(t(f"{prop.name}: {why.de}", f"{prop.name}: {why.en}"))
                value = None
            if isinstance(value, str) and limit and len(value) > limit:
                note, value = _over_length(prop, limit, value)
                (cut if prop.truncate else found).append(note)
            elif value is not None and prop.pattern and not re.fullmatch(prop.pattern, str(value)):
                found.append(_wrong_form(prop.name, _short(str(value))))
            return value, tuple(found), tuple(cut)

        codes, results = _factorized(raw, convert)
        vals = _column(codes, results, 0)
        bad_u = np.array([bool(r[1]) for r in results], dtype=bool)
        for i in np.nonzero(bad_u[codes])[0].tolist():
            problems.setdefault(i, []).extend(results[codes[i]][1])
        cut_u = np.array([bool(r[2]) for r in results], dtype=bool)
        for i in np.nonzero(cut_u[codes])[0].tolist():
            repairs.setdefault(i, []).extend(results[codes[i]][2])
        values[prop.name] = vals
        if prop.required:
            for i in np.nonzero(np.equal(vals, None))[0].tolist():
                row_problems = problems.setdefault(i, [])
                if not any(p.startswith(prop.name) for p in row_problems):
                    row_problems.append(_not_given(prop.name))
    return MappedColumns(values, problems, repairs)
