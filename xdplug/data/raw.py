"""Raw domains as recipes deliver them, and readers for RecBole atomic files.

A recipe returns :class:`RawDomains`: for each domain a table of interactions
(``user``, ``item``, ``rating``, ``timestamp``; all IDs as strings) and a table
of items (``item`` plus any descriptive fields), and how the domains align.
Everything downstream (filtering, alignment, split, text) is the engine's, so
it is the same for every recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

INTER_COLUMNS = ("user", "item", "rating", "timestamp")


@dataclass
class RawDomain:
    """One domain's interactions and item descriptions."""

    name: str
    #: columns: user (str), item (str), rating (float, NaN for implicit), timestamp (float, may be NaN)
    inter: pd.DataFrame
    #: columns: item (str) plus descriptive fields (title, year, genres, ...)
    items: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"item": []}))
    #: where the interactions came from, for error messages and summaries
    origin: str = ""


@dataclass
class RawDomains:
    """Source and target domain plus how their entities align."""

    source: RawDomain
    target: RawDomain
    #: "id": the same user ID means the same person in both domains; None: users are disjoint
    align_users: str | None = None
    #: "id": same item ID; "key": same normalised ``item_key_field`` value; None: no shared items
    align_items: str | None = "id"
    #: item field whose normalised value matches items across domains (align_items="key")
    item_key_field: str = "title"
    #: maps template placeholders to item fields, e.g. {"title": "movie_title"}
    text_fields: dict[str, str] = field(default_factory=dict)
    description: str = ""


def validate_inter(df: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Check and normalise an interaction table; errors name the file and field."""
    for column in ("user", "item"):
        if column not in df.columns:
            raise DataError(f"missing column; found columns {list(df.columns)}", origin, column)
    df = df.copy()
    if "rating" not in df.columns:
        df["rating"] = np.nan
    if "timestamp" not in df.columns:
        df["timestamp"] = np.nan
    for column in ("rating", "timestamp"):
        try:  # fast path: every value is a number (or missing)
            values = df[column].astype(float)
        except (TypeError, ValueError):
            values = pd.to_numeric(df[column], errors="coerce")
        refuse_nonfinite(df[column], values, origin, column)
        # a value that did not parse and is not blank is an error; blank means "no value"
        suspect = values.isna() & df[column].notna()
        if suspect.any():
            bad = suspect & (df[column].astype(str).str.strip() != "")
            if bad.any():
                example = df.loc[bad, column].iloc[0]
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"expected numbers, got {example!r} (row {row + 1})", origin, column)
        df[column] = values.astype(float)
    for column in ("user", "item"):
        if df[column].isna().any():
            row = int(np.flatnonzero(df[column].isna().to_numpy())[0])
            raise DataError(f"empty value in row {row + 1}", origin, column)
        df[column] = df[column].astype(str)
    if df.empty:
        raise DataError("no interactions", origin)
    return df[list(INTER_COLUMNS)].reset_index(drop=True)


_NAN_WORDS = ("nan", "+nan", "-nan")


def refuse_nonfinite(given: pd.Series, values: pd.Series, origin: str, column: str) -> None:
    """A DataError when a written value parses to inf, -inf or NaN; a blank cell is no value, not NaN.

    ``given`` is the column as read, ``values`` its numbers. Python parses "inf" and "nan" as
    floats, so without this an infinite rating would count as a positive and sort first.
    """
    numbers = np.asarray(values, dtype=float)
    bad = np.isinf(numbers)
    if not pd.api.types.is_numeric_dtype(given):  # a numeric column's NaN is a missing value
        text = given.astype(str).str.strip().str.lower()
        bad |= (given.notna() & text.isin(_NAN_WORDS)).to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{len(rows)} value{'s are' if len(rows) > 1 else ' is'} not a finite number (inf, -inf "
                        f"or NaN), e.g. {given.iloc[rows[0]]!r} in row {rows[0] + 1}; fix or drop those rows",
                        origin, column)


def column_numbers(values: pd.Series, origin: str, column: str, dates: bool = False) -> pd.Series:
    """A column as floats: numbers as written and, with ``dates``, dates or Parquet timestamps as seconds
    since the epoch (UTC). A blank cell stays NaN (missing); anything else unparsed is one DataError
    naming the file, the column and the first bad row."""
    if dates and pd.api.types.is_datetime64_any_dtype(values):  # Parquet timestamps: seconds
        as_utc = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        return (as_utc - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    if pd.api.types.is_numeric_dtype(values):
        refuse_nonfinite(values, values.astype(float), origin, column)
        return values.astype(float)
    numbers = pd.to_numeric(values, errors="coerce")
    refuse_nonfinite(values, numbers, origin, column)  # "inf", "-inf", "nan": parsed, yet no number
    bad = numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")
    if bad.any() and dates:
        # timestamps may be dates ("2021-03-04 12:00"): seconds since the epoch
        parsed = pd.to_datetime(values[bad], errors="coerce", utc=True)
        ok = parsed.notna()
        numbers.loc[parsed.index[ok]] = (parsed[ok] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        bad = numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        kind = "numbers or dates" if dates else "numbers"
        raise DataError(f"expected {kind}, got {values[bad].iloc[0]!r} (row {row + 1})", origin, column)
    return numbers.astype(float)


def dedupe_items(items: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """One row per item ID: repeated identical rows go; of rows that disagree, the first stays.

    Returns the table and ``{"identical": rows dropped as exact repeats, "conflicting_items":
    IDs whose rows disagree, "conflicting_rows": rows dropped for it, "example": one such ID}``.
    """
    stats = {"identical": 0, "conflicting_items": 0, "conflicting_rows": 0, "example": None}
    if "item" not in items.columns or not len(items):
        return items, stats
    ids = items["item"].astype(str)
    if not ids.duplicated().any():
        return items, stats
    view = items.assign(item=ids)
    try:
        identical = view.duplicated(keep="first")
    except TypeError:  # unhashable cells (lists): compare their text
        identical = view.astype(str).duplicated(keep="first")
    rest = view[~identical.to_numpy()]
    conflicting = rest["item"].duplicated(keep="first")
    stats["identical"] = int(identical.sum())
    if conflicting.any():
        stats["conflicting_rows"] = int(conflicting.sum())
        stats["conflicting_items"] = int(rest.loc[conflicting, "item"].nunique())
        stats["example"] = str(rest.loc[conflicting, "item"].iloc[0])
    kept = items[~identical.to_numpy()][~conflicting.to_numpy()]
    return kept.reset_index(drop=True), stats


def drop_duplicate_interactions(df: pd.DataFrame, origin: str, policy: str = "last") -> tuple[pd.DataFrame, int]:
    """Keep one row per (user, item): the latest one. Returns the table and how many rows went."""
    if policy == "error":
        dup = df.duplicated(["user", "item"], keep=False)
        if dup.any():
            first = df[dup].iloc[0]
            raise DataError(
                f"duplicate interaction user={first['user']!r} item={first['item']!r} "
                f"({int(dup.sum())} rows repeat a (user, item) pair)", origin, "user,item")
        return df, 0
    before = len(df)
    df = df.sort_values("timestamp", kind="stable").drop_duplicates(["user", "item"], keep=policy)
    return df.sort_index().reset_index(drop=True), before - len(df)


_TYPES = {"token", "token_seq", "float", "float_seq"}


def read_atomic(path: str | Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a RecBole atomic file (``name:type`` headers, tab separated) with clear errors.

    Columns are renamed to their bare names (``user_id:token`` -> ``user_id``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", str(path))
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline().rstrip("\n\r")
    if "\t" not in header:
        sep_hint = "," if "," in header else (";" if ";" in header else None)
        hint = f" (the header looks {sep_hint!r}-separated)" if sep_hint else ""
        raise DataError(f"expected a tab-separated header of name:type columns{hint}, got {header[:80]!r}", str(path))
    columns = header.split("\t")
    names = []
    for column in columns:
        name, _, kind = column.partition(":")
        if not name or kind not in _TYPES:
            raise DataError(
                f"header column {column!r} must look like name:type with type one of {sorted(_TYPES)}",
                str(path), column)
        names.append(name)
    for name in required:
        if name not in names:
            raise DataError(f"missing column; header has {names}", str(path), name)
    try:
        df = pd.read_csv(path, sep="\t", header=0, names=names, dtype=str, keep_default_na=False,
                         quoting=3, na_values=[""], engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse the file: {str(exc).strip()}", str(path)) from None
    return df
