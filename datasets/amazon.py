"""Amazon Reviews 2018 (Ni, Li & McAuley, EMNLP 2019) as a cross-domain benchmark.

Why this recipe: ``reviewerID`` is an account-wide Amazon ID, so a person who
reviews in two categories (Books and Movies_and_TV, say) is the same user in
both domains and the engine can align users by ID. The catalogues are disjoint
(every ASIN belongs to its own category's files), so items never align; what
can transfer besides users is item text, which the metadata files provide
(title, category path, brand, description).

Files, as published at https://nijianmo.github.io/amazon/ (hosted under
``.../mcauley_group/data/amazon_v2/``):

* ``categoryFiles/{Category}.json.gz``: every review of a category;
* ``categoryFilesSmall/{Category}_5.json.gz``: the 5-core subset;
* ``metaFiles2/meta_{Category}.json.gz``: product metadata.

All are JSON lines. A review has ``reviewerID``, ``asin``, ``overall`` (1-5
stars) and ``unixReviewTime`` (seconds) besides text fields this loader drops.
A metadata line has ``asin``, ``title``, ``category`` (list of str, the
category path), ``brand``, ``description`` (list of str), ``date`` and more.
Some metadata lines are not strict JSON (the 2014 release and parts of older
dumps are Python literals with single quotes), so metadata falls back to
:func:`ast.literal_eval` per line; reviews are strict JSON and read in pandas
chunks. Plain (uncompressed) copies of each file are accepted too.

Nothing is downloaded unless the user sets ``download: true``; offline, a
missing file is a :class:`DataError` naming the file, where it was looked for
and the URL it comes from.
"""

from __future__ import annotations

import ast
import difflib
import gzip
import html
import http.client
import json
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Iterable, Iterator, TextIO

import numpy as np
import pandas as pd

from xdplug.api import (Bool, Choice, ConfigError, DataError, DatasetRecipe, downloads_dir, RawDomain,
                        RawDomains, Str, validate_inter)

logger = logging.getLogger(__name__)

#: mirrors of the 2018 release, tried in order
MIRRORS = (
    "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/",
    "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/",
)
HOMEPAGE = "https://nijianmo.github.io/amazon/"

#: the 29 categories of the 2018 release, spelled as in the file names
CATEGORIES = (
    "AMAZON_FASHION", "All_Beauty", "Appliances", "Arts_Crafts_and_Sewing", "Automotive",
    "Books", "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry",
    "Digital_Music", "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food", "Home_and_Kitchen",
    "Industrial_and_Scientific", "Kindle_Store", "Luxury_Beauty", "Magazine_Subscriptions",
    "Movies_and_TV", "Musical_Instruments", "Office_Products", "Patio_Lawn_and_Garden",
    "Pet_Supplies", "Prime_Pantry", "Software", "Sports_and_Outdoors",
    "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games",
)

#: review JSON key -> interaction column
REVIEW_FIELDS = {"reviewerID": "user", "asin": "item", "overall": "rating", "unixReviewTime": "timestamp"}
#: item table columns, in order
ITEM_COLUMNS = ("item", "title", "category", "brand", "description", "year")
DESCRIPTION_CHARS = 200
_CHUNK_LINES = 500_000

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']+)["']""")


# ----------------------------------------------------------------------------- files

def review_filename(category: str, five_core: bool = True) -> str:
    return f"{category}_5.json.gz" if five_core else f"{category}.json.gz"


def meta_filename(category: str) -> str:
    return f"meta_{category}.json.gz"


def file_urls(filename: str) -> list[str]:
    """Where a 2018 file lives on each mirror."""
    if filename.startswith("meta_"):
        folder = "metaFiles2/"
    elif filename.endswith("_5.json.gz"):
        folder = "categoryFilesSmall/"
    else:
        folder = "categoryFiles/"
    return [base + folder + filename for base in MIRRORS]


def canonical_category(name: str, path: str, categories: tuple[str, ...] = CATEGORIES,
                       release: str = "Amazon 2018") -> str:
    """The release's spelling of a category name (case-insensitive); a typo is a ConfigError."""
    if not isinstance(name, str):
        raise ConfigError(path, f"expected a category name (a string), got {name!r}")
    by_lower = {c.lower(): c for c in categories}
    found = by_lower.get(name.strip().lower())
    if found:
        return found
    close = difflib.get_close_matches(name, categories, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(path, f"unknown {release} category {name!r}.{hint} Known: {', '.join(categories)}")


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _open_text(path: Path) -> TextIO:
    if _is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def _corrupt(path: Path, exc: Exception, homepage: str = HOMEPAGE) -> DataError:
    return DataError(
        f"corrupt or truncated file ({exc}); delete it and download it again from {homepage}", str(path))


def download_file(filename: str, dest_dir: Path, timeout: float = 60.0, urls: list[str] | None = None,
                  homepage: str = HOMEPAGE) -> Path:
    """Fetch one file into ``dest_dir`` from the first of ``urls`` that serves it (default: the
    2018 mirrors): written to a temporary file, then renamed.

    A half-finished download never takes the final name, so an interrupted run
    cannot leave a truncated file that a later run would trust.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / filename
    errors = []
    for url in urls if urls is not None else file_urls(filename):
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            logger.info("downloading %s", url)
            request = urllib.request.Request(url, headers={"User-Agent": "xdplug"})
            with urllib.request.urlopen(request, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
                fd = None
                expected = getattr(response, "headers", {}).get("Content-Length")
                shutil.copyfileobj(response, out, length=1 << 20)
                written = out.tell()
            if expected and expected.isdigit() and int(expected) != written:
                raise ValueError(f"got {written} of {expected} bytes")
            if not _is_gzip(tmp):
                raise ValueError("the server did not send a gzip file")
            os.replace(tmp, dest)
            logger.info("saved %s (%d bytes)", dest, dest.stat().st_size)
            return dest
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
            logger.warning("download failed: %s: %s", url, exc)
        finally:
            if fd is not None:
                os.close(fd)
            tmp.unlink(missing_ok=True)
    raise DataError("download failed from every mirror: " + "; ".join(errors)
                    + f". Download it by hand from {homepage} and put it in {dest_dir}", str(dest))


def locate(filename: str, search_dirs: list[Path], download_to: Path | None, urls: list[str] | None = None,
           homepage: str = HOMEPAGE) -> Path:
    """Find ``filename`` (or its uncompressed twin) in ``search_dirs``; download if allowed
    (from ``urls``, default the 2018 mirrors)."""
    urls = urls if urls is not None else file_urls(filename)
    for folder in search_dirs:
        for name in (filename, filename.removesuffix(".gz")):
            candidate = folder / name
            if candidate.is_file():
                return candidate
    if download_to is not None:
        return download_file(filename, download_to, urls=urls, homepage=homepage)
    where = " or ".join(str(d) for d in search_dirs)
    raise DataError(
        f"file not found in {where}. Download {urls[0]} (see {homepage}) into "
        f"{search_dirs[0]}, or set the dataset option download: true to fetch it",
        filename)


# ----------------------------------------------------------------------------- reviews

def _parse_review(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:  # includes UnicodeDecodeError
        try:
            record = json.loads(line.decode("utf-8", errors="replace"))
        except ValueError:
            return None
    return record if isinstance(record, dict) else None


def read_reviews(path: str | Path, fields: dict[str, str] = REVIEW_FIELDS, homepage: str = HOMEPAGE) -> pd.DataFrame:
    """The interaction fields (``fields``' keys) of a review file, one row per review, raw JSON names.

    Lines are parsed one by one (a JSON parser cannot be vectorised, and this
    is faster than ``pandas.read_json`` because the review text is never put in
    a frame); rows go to a frame every ``_CHUNK_LINES`` to bound peak memory.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", str(path))
    keys = list(fields)
    frames, rows = [], []
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = _parse_review(line)
                if record is None:
                    text = line.decode("utf-8", errors="replace").strip()[:80]
                    raise DataError(f"line {number} is not a JSON object: {text!r}; expected one JSON review "
                                    "per line", str(path))
                rows.append(tuple(record.get(k) for k in keys))
                if len(rows) >= _CHUNK_LINES:
                    frames.append(pd.DataFrame(rows, columns=keys))
                    rows = []
    except _GZIP_ERRORS as exc:
        raise _corrupt(path, exc, homepage) from None
    if rows:
        frames.append(pd.DataFrame(rows, columns=keys))
    if not frames:
        raise DataError("empty file; expected JSON lines with keys " + ", ".join(fields), str(path))
    df = pd.concat(frames, ignore_index=True)
    return df[[k for k in keys if df[k].notna().any()]]


def _validate(df: pd.DataFrame, origin: str, raw_names: dict[str, str]) -> pd.DataFrame:
    """:func:`validate_inter`, with errors naming the file's own field instead of ours."""
    try:
        return validate_inter(df, origin)
    except DataError as exc:
        raw = raw_names.get(exc.field or "")
        if raw is None or raw == exc.field:
            raise
        prefix = str(DataError("", exc.file, exc.field))
        message = str(exc)[len(prefix):]
        raise DataError(message, exc.file, raw) from None


def reviews_to_inter(raw: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Rename review fields to the interaction columns and validate them."""
    for key in ("reviewerID", "asin"):
        if key not in raw.columns:
            raise DataError(f"missing field; expected JSON lines with keys {', '.join(REVIEW_FIELDS)}, "
                            f"found {list(raw.columns)}", origin, key)
    inter = raw.rename(columns=REVIEW_FIELDS)
    return _validate(inter, origin, {v: k for k, v in REVIEW_FIELDS.items()})


# ----------------------------------------------------------------------------- metadata

def _parse_line(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return record if isinstance(record, dict) else None


def _iter_meta(path: Path, keep: set[str] | None) -> Iterator[tuple]:
    bad, first_bad, seen = 0, 0, 0
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            seen += 1
            if keep is not None:
                match = _ASIN.search(line)
                if match and match.group(1) not in keep:
                    continue
            record = _parse_line(line)
            if record is None or "asin" not in record:
                bad += 1
                first_bad = first_bad or number
                continue
            if keep is not None and str(record["asin"]) not in keep:
                continue
            yield (record.get("asin"), record.get("title"), record.get("category", record.get("categories")),
                   record.get("brand"), record.get("description"), record.get("date"))
    if bad:
        logger.warning("%s: skipped %d of %d metadata lines that are neither JSON nor a Python literal "
                       "with an 'asin' (first at line %d)", path, bad, seen, first_bad)
    if seen == 0:
        raise DataError("empty file; expected JSON lines with keys asin, title, category, brand, description",
                        str(path))
    if bad == seen:
        raise DataError(f"no line is a JSON object with an 'asin' (first bad line {first_bad}); expected "
                        "JSON lines with keys asin, title, category, brand, description", str(path), "asin")


def _flatten(value) -> str:
    """A metadata value (str, list of str, list of lists) as one string."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (list, tuple)):
        parts: list[str] = []
        for element in value:
            if isinstance(element, (list, tuple)):
                parts.extend(str(e) for e in element)
            elif element is not None:
                parts.append(str(element))
        seen = dict.fromkeys(p.strip() for p in parts if p and p.strip())
        return "\u0001".join(seen)
    return str(value)


def _clean(series: pd.Series) -> pd.Series:
    """Unescape HTML entities, drop tags, collapse whitespace."""
    text = series.fillna("").astype(str).map(html.unescape)
    text = text.str.replace(_TAG, " ", regex=True).str.replace(_SPACE, " ", regex=True)
    return text.str.strip()


def read_meta(path: str | Path, keep: Iterable[str] | None = None) -> pd.DataFrame:
    """Item table (``ITEM_COLUMNS``) from a metadata file, restricted to ``keep`` ASINs if given."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", str(path))
    keep_set = None if keep is None else {str(k) for k in keep}
    try:
        rows = list(_iter_meta(path, keep_set))
    except _GZIP_ERRORS as exc:
        raise _corrupt(path, exc) from None
    raw = pd.DataFrame(rows, columns=["item", "title", "category", "brand", "description", "date"])
    raw["item"] = raw["item"].astype(str)
    raw = raw.drop_duplicates("item", keep="first")
    items = pd.DataFrame({"item": raw["item"].to_numpy()})
    items["title"] = _clean(raw["title"]).to_numpy()
    categories = _clean(raw["category"].map(_flatten))
    items["category"] = categories.str.replace("\u0001", ", ", regex=False).to_numpy()
    items["brand"] = _clean(raw["brand"]).to_numpy()
    # cut long descriptions before the regex work; 10x the kept length leaves room for markup
    description = raw["description"].map(_flatten).str.slice(0, 10 * DESCRIPTION_CHARS)
    description = _clean(description.str.replace("\u0001", " ", regex=False))
    items["description"] = description.str.slice(0, DESCRIPTION_CHARS).str.strip().to_numpy()
    year = raw["date"].fillna("").astype(str).str.extract(_YEAR, expand=False)
    items["year"] = year.fillna("").to_numpy()
    return items[list(ITEM_COLUMNS)].reset_index(drop=True)


# ----------------------------------------------------------------------------- domain

def load_amazon_domain(reviews_path: str | Path, meta_path: str | Path | None, name: str) -> RawDomain:
    """One category as a :class:`RawDomain`: validated interactions plus item text.

    ``meta_path=None`` gives an item table with IDs only (no text).
    """
    reviews_path = Path(reviews_path)
    inter = reviews_to_inter(read_reviews(reviews_path), str(reviews_path))
    if meta_path is None:
        items = pd.DataFrame({c: pd.Series(dtype=str) for c in ITEM_COLUMNS})
    else:
        items = read_meta(meta_path, keep=inter["item"].unique())
    missing = inter["item"].nunique() - len(items)
    if meta_path is not None and missing:
        logger.info("%s: %d of %d reviewed items have no metadata line", name, missing, inter["item"].nunique())
    logger.info("%s: %d reviews, %d users, %d items (%d with metadata)", name, len(inter),
                inter["user"].nunique(), inter["item"].nunique(), len(items))
    return RawDomain(name=name, inter=inter, items=items, origin=str(reviews_path))


class AmazonCategoriesRecipe(DatasetRecipe):
    """Two categories of one Amazon Reviews release: what the 2018 and 2023 recipes share.

    Category names are accepted in any case (a typo gets a suggestion), source
    and target must differ, and the files are looked for in ``data_dir`` then
    in the downloads folder ``downloads/<SUBDIR>``.
    """

    CATEGORIES: tuple[str, ...] = CATEGORIES
    RELEASE = "Amazon 2018"
    SUBDIR = "amazon"

    def __init__(self, params: dict | None = None, path: str | None = None):
        where = path or f"{self.kind}:{self.name}"
        params = dict(params or {})
        for key in ("source", "target"):  # category names in any case, a typo gets a suggestion
            if key in params:
                params[key] = canonical_category(params[key], f"{where}.{key}", self.CATEGORIES, self.RELEASE)
        super().__init__(params, path)
        if self.params["source"] == self.params["target"]:
            raise ConfigError(f"{where}.target", f"must differ from source ({self.params['source']!r})")

    def _download_dir(self) -> Path:
        return downloads_dir() / self.SUBDIR

    def _dirs(self) -> list[Path]:
        given = self.params["data_dir"]
        return [Path(given).expanduser(), self._download_dir()] if given else [self._download_dir()]


class AmazonRecipe(AmazonCategoriesRecipe):
    """Two Amazon 2018 categories; reviewers shared by ID, disjoint catalogues."""

    name = "amazon"
    description = ("Amazon Reviews 2018: two categories, reviewers aligned by reviewerID, "
                   "item text from the metadata files")
    defaults = {
        "source": Choice("Books", CATEGORIES, help="source category (any case)"),
        "target": Choice("Movies_and_TV", CATEGORIES, help="target category (any case)"),
        "data_dir": Str("", help="folder holding the files (searched before the downloads folder)"),
        "five_core": Bool(True, help="read the 5-core review files instead of every review"),
        "download": Bool(False, help="download missing files from the McAuley lab's mirrors"),
    }

    #: template placeholder -> item column; every column exists (empty string when unknown)
    TEXT_FIELDS = {"title": "title", "genres": "category", "year": "year", "brand": "brand",
                   "description": "description"}

    def origin(self) -> str:
        five = self.params["five_core"]
        files = ", ".join(name for c in (self.params["source"], self.params["target"])
                          for name in (review_filename(c, five), meta_filename(c)))
        how = "downloaded on first use" if self.params["download"] else "download: false, put them there by hand"
        return (f"Amazon Reviews 2018 (Ni, Li & McAuley 2019, {HOMEPAGE}): {files} from "
                f"{' or '.join(map(str, self._dirs()))} ({how})")

    def load(self, cache_dir: str) -> RawDomains:
        """Read both categories; ``cache_dir`` is not used (files live in data_dir/downloads)."""
        dirs = self._dirs()
        download_to = self._download_dir() if self.params["download"] else None
        domains = []
        for category in (self.params["source"], self.params["target"]):
            reviews = locate(review_filename(category, self.params["five_core"]), dirs, download_to)
            meta = locate(meta_filename(category), dirs, download_to)
            domains.append(load_amazon_domain(reviews, meta, category))
        source, target = domains
        return RawDomains(
            source=source, target=target, align_users="id", align_items=None,
            text_fields=dict(self.TEXT_FIELDS),
            description=f"Amazon 2018 {source.name} -> {target.name}"
                        f"{' (5-core)' if self.params['five_core'] else ''}",
        )
