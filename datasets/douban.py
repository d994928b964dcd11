"""Douban book / movie / music ratings as a cross-domain benchmark.

Why this recipe: the Douban release of Zhu et al. (DTCDR, CIKM 2019; also used
by GA-DTCDR, IJCAI 2020) covers three domains rated by one user base, and a
``user_id`` means the same Douban account in every domain, so users align by
ID. Item IDs are per-domain, so items never align; item text comes from the
per-domain item files.

There is no official download: the authors distribute the files (a copy is on
Kaggle as ``fengzhujoey/douban-datasetratingreviewside-information``, folder
``douban_dataset(text information)``). Point ``data_dir`` at the folder that
holds them (or at its parent).

Format, as read by public code using these files (not from a published spec):

* ``{book,movie,music}reviews_cleaned.txt``: tab-separated, fields quoted with
  ``"``, quoted header ``"user_id" "{domain}_id" "rating" "labels" "comment"
  "time" "ID"``; ``time`` is a date (``YYYY-MM-DD``); ``comment`` may contain
  newlines inside quotes.
* ``books_cleaned.txt``, ``movies_cleaned.txt``, ``music_cleaned.txt``: same
  dialect, one row per item. Their last column ``UID`` is the item ID the
  review files use (``{domain}_id`` there is the original Douban subject ID).
  ``movies_cleaned.txt`` has ``name``, ``tag``, ``pubdate``, ``summary``,
  ``director`` and more; the book and music columns could not be confirmed, so
  the text columns are picked from :data:`TITLE_COLUMNS` etc., whichever
  exists, and ``columns=`` in :func:`load_douban_domain` overrides the choice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xdplug.api import (Choice, ConfigError, DataError, DatasetRecipe, RawDomain, RawDomains, Str,
                        validate_inter)

logger = logging.getLogger(__name__)

DOMAINS = ("book", "movie", "music")
#: subfolders of data_dir searched too (the layout of the distributed archive)
SUBFOLDERS = (".", "douban_dataset(text information)", "douban_dataset/douban_dataset(text information)")
KAGGLE = "https://www.kaggle.com/datasets/fengzhujoey/douban-datasetratingreviewside-information"

#: item-file columns tried in order for each text field
KEY_COLUMNS = ("UID",)
TITLE_COLUMNS = ("name", "title", "book_name", "music_name", "album")
GENRE_COLUMNS = ("tag", "tags", "genre", "genres", "style")
YEAR_COLUMNS = ("pubdate", "year", "publish_time", "publish_date", "pub_date", "release_date")
DESCRIPTION_COLUMNS = ("summary", "description", "intro")
DESCRIPTION_CHARS = 200

ITEM_COLUMNS = ("item", "title", "genres", "year", "description")


@dataclass(frozen=True)
class DoubanFiles:
    """File names and ID column of one domain."""

    reviews: str
    items: str
    item_id: str


FILES = {
    "book": DoubanFiles("bookreviews_cleaned.txt", "books_cleaned.txt", "book_id"),
    "movie": DoubanFiles("moviereviews_cleaned.txt", "movies_cleaned.txt", "movie_id"),
    "music": DoubanFiles("musicreviews_cleaned.txt", "music_cleaned.txt", "music_id"),
}


def _find(data_dir: Path, filename: str) -> Path:
    for sub in SUBFOLDERS:
        candidate = data_dir / sub / filename
        if candidate.is_file():
            return candidate
    raise DataError(
        f"file not found in {data_dir} (or its subfolder 'douban_dataset(text information)'); "
        f"Douban has no official download: get the files from the authors of DTCDR (Zhu et al., "
        f"CIKM 2019) or {KAGGLE} and point the dataset option data_dir at them",
        str(data_dir / filename))


def _read_header(path: Path) -> list[str]:
    try:
        head = pd.read_csv(path, sep="\t", quotechar='"', nrows=0, encoding="utf-8",
                           encoding_errors="replace")
    except pd.errors.EmptyDataError:
        raise DataError("empty file; expected a tab-separated header like "
                        '"user_id" "book_id" "rating" "labels" "comment" "time" "ID"', str(path)) from None
    return [str(c) for c in head.columns]


def read_tsv(path: Path, wanted: list[str]) -> pd.DataFrame:
    """Read the ``wanted`` columns (all present) of a quoted tab-separated file, as strings."""
    header = _read_header(path)
    names = {name.strip().strip('"'): name for name in header}
    usecols = [names[w] for w in wanted]
    try:
        df = pd.read_csv(path, sep="\t", quotechar='"', usecols=usecols, dtype=str, keep_default_na=False,
                         na_values=[""], encoding="utf-8", encoding_errors="replace", engine="c")
    except pd.errors.ParserError as exc:
        raise DataError(f"cannot parse as quoted tab-separated text ({exc})", str(path)) from None
    return df.rename(columns={v: k for k, v in names.items()})


def _header_names(path: Path) -> list[str]:
    return [name.strip().strip('"') for name in _read_header(path)]


def _to_unix_seconds(values: pd.Series, origin: str, field: str) -> pd.Series:
    dates = pd.to_datetime(values, errors="coerce", format="ISO8601")
    bad = dates.isna() & values.notna() & (values.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"expected dates like 2013-04-19, got {values[bad].iloc[0]!r} (row {row + 1})",
                        origin, field)
    seconds = (dates - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    return seconds.astype(float)


def read_reviews(path: Path, item_id: str) -> pd.DataFrame:
    """Validated interactions of one review file."""
    origin = str(path)
    columns = _header_names(path)
    for required in ("user_id", item_id, "rating"):
        if required not in columns:
            raise DataError(f"missing column; expected a header with user_id, {item_id}, rating (and time), "
                            f"found {columns}", origin, required)
    wanted = ["user_id", item_id, "rating"] + (["time"] if "time" in columns else [])
    raw = read_tsv(path, wanted)
    inter = pd.DataFrame({"user": raw["user_id"], "item": raw[item_id], "rating": raw["rating"]})
    if "time" in raw.columns:
        inter["timestamp"] = _to_unix_seconds(raw["time"], origin, "time")
    else:
        logger.warning("%s: no time column; interactions have no timestamps", path)
    try:
        return validate_inter(inter, origin)
    except DataError as exc:
        raw_name = {"user": "user_id", "item": item_id}.get(exc.field or "")
        if raw_name is None:
            raise
        prefix = str(DataError("", exc.file, exc.field))
        raise DataError(str(exc)[len(prefix):], exc.file, raw_name) from None


def _pick(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[c.lower()] for c in candidates if c.lower() in lowered), None)


def read_items(path: Path, item_id: str, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Item table (``ITEM_COLUMNS``) of one item file; unknown fields are empty strings."""
    origin = str(path)
    header = _header_names(path)
    chosen = {
        "item": _pick(header, KEY_COLUMNS) or _pick(header, (item_id,)),
        "title": _pick(header, TITLE_COLUMNS),
        "genres": _pick(header, GENRE_COLUMNS),
        "year": _pick(header, YEAR_COLUMNS),
        "description": _pick(header, DESCRIPTION_COLUMNS),
    }
    for field, column in (columns or {}).items():
        if field not in chosen:
            raise DataError(f"unknown text field {field!r} in the column mapping; use one of {list(chosen)}",
                            origin, field)
        if column and column not in header:
            raise DataError(f"missing column; the column mapping names it but the header has {header}",
                            origin, column)
        chosen[field] = column or None
    if chosen["item"] is None:
        raise DataError(f"missing column; expected UID (the item ID the review file uses) or {item_id}, "
                        f"found {header}", origin, "UID")
    if chosen["title"] is None:
        logger.warning("%s: no title column among %s; items get no title", path, TITLE_COLUMNS)
    raw = read_tsv(path, sorted({c for c in chosen.values() if c}))
    items = pd.DataFrame({"item": raw[chosen["item"]]})
    if items["item"].isna().any():
        row = int(np.flatnonzero(items["item"].isna().to_numpy())[0])
        raise DataError(f"empty item ID in row {row + 1}", origin, chosen["item"])
    for field in ("title", "genres", "year", "description"):
        column = chosen[field]
        values = raw[column].fillna("") if column else pd.Series("", index=raw.index)
        items[field] = values.astype(str).str.replace(r"\s+", " ", regex=True).str.strip()
    # tags come as "a|b", "a/b" or a printed Python list "['a', 'b']"
    items["genres"] = (items["genres"].str.replace(r"[\[\]']", "", regex=True)
                       .str.replace(r"\s*[|/,]\s*", ", ", regex=True).str.strip(", "))
    items["year"] = items["year"].str.extract(r"(\d{4})", expand=False).fillna("")
    items["description"] = items["description"].str.slice(0, DESCRIPTION_CHARS).str.strip()
    return items.drop_duplicates("item", keep="first")[list(ITEM_COLUMNS)].reset_index(drop=True)


def load_douban_domain(domain: str, data_dir: str | Path,
                       columns: dict[str, str] | None = None) -> RawDomain:
    """One Douban domain (``book``, ``movie`` or ``music``) as a :class:`RawDomain`.

    ``columns`` maps item text fields (``item``, ``title``, ``genres``, ``year``,
    ``description``) to item-file column names where the automatic choice is
    wrong; an empty name drops the field.
    """
    if domain not in FILES:
        raise DataError(f"unknown Douban domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    files = FILES[domain]
    data_dir = Path(data_dir).expanduser()
    reviews_path = _find(data_dir, files.reviews)
    items_path = _find(data_dir, files.items)
    inter = read_reviews(reviews_path, files.item_id)
    items = read_items(items_path, files.item_id, columns)
    items = items[items["item"].isin(set(inter["item"]))].reset_index(drop=True)
    n_items = inter["item"].nunique()
    if len(items) < n_items / 2:
        logger.warning("%s: only %d of %d rated items are in %s; if its item ID column is not the one the "
                       "review file uses, pass columns={'item': ...}", domain, len(items), n_items,
                       items_path.name)
    elif len(items) < n_items:
        logger.info("%s: %d of %d rated items are not in %s", domain, n_items - len(items), n_items,
                    items_path.name)
    logger.info("douban %s: %d ratings, %d users, %d items", domain, len(inter), inter["user"].nunique(),
                n_items)
    return RawDomain(name=domain, inter=inter, items=items, origin=str(reviews_path))


class DoubanRecipe(DatasetRecipe):
    """Two of Douban's book / movie / music domains; users shared by ID."""

    name = "douban"
    description = "Douban ratings (Zhu et al. 2019): two of book/movie/music, users aligned by ID"
    defaults = {
        "source": Choice("book", DOMAINS, help="source domain (any case)"),
        "target": Choice("movie", DOMAINS, help="target domain (any case)"),
        "data_dir": Str("", help="folder holding the distributed files (or its parent)"),
    }

    #: template placeholder -> item column; every column exists (empty string when unknown)
    TEXT_FIELDS = {"title": "title", "genres": "genres", "year": "year", "description": "description"}

    def __init__(self, params: dict | None = None, path: str | None = None):
        params = dict(params or {})
        for key in ("source", "target"):  # domain names in any case
            if isinstance(params.get(key), str) and params[key].strip().lower() in DOMAINS:
                params[key] = params[key].strip().lower()
        super().__init__(params, path)
        where = path or f"{self.kind}:{self.name}"
        if self.params["source"] == self.params["target"]:
            raise ConfigError(f"{where}.target", f"must differ from source ({self.params['source']!r})")

    def origin(self) -> str:
        where = self.params["data_dir"] or "(data_dir not set)"
        return (f"Douban (Zhu et al., CIKM 2019), no official download: files from the authors or {KAGGLE}, "
                f"read from {where}")

    def load(self, cache_dir: str) -> RawDomains:
        """Read both domains from ``data_dir``; ``cache_dir`` is not used."""
        if not self.params["data_dir"]:
            raise DataError(
                "Douban has no official download; get the files from the authors of DTCDR (Zhu et al., "
                f"CIKM 2019) or {KAGGLE} and set the dataset option data_dir to their folder", None, "data_dir")
        source = load_douban_domain(self.params["source"], self.params["data_dir"])
        target = load_douban_domain(self.params["target"], self.params["data_dir"])
        return RawDomains(
            source=source, target=target, align_users="id", align_items=None,
            text_fields=dict(self.TEXT_FIELDS),
            description=f"Douban {source.name} -> {target.name}",
        )
