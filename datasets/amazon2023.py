"""Amazon Reviews 2023 (Hou, Li, He, Yan, Chen & McAuley 2024) as a cross-domain benchmark.

Why this recipe: the current Amazon release (571M reviews, May 1996 - Sep 2023,
33 categories plus ``Unknown``). ``user_id`` is account-wide, so a person who
reviews in two categories is the same user in both domains and users align by
ID. Items are keyed by ``parent_asin`` (the product, all its variants
together), as in the release's own benchmarks; a product listed in two
categories keeps its ``parent_asin`` in both, so items can be shared too
(``align_items: auto`` aligns them by ID when the two categories have any in
common). Item text comes from the metadata files.

Files, as published at https://amazon-reviews-2023.github.io/ (under
``.../amazon_2023/raw/`` on the McAuley lab's servers, :data:`MIRRORS`):

* ``review_categories/{Category}.jsonl.gz``: every review of a category;
* ``meta_categories/meta_{Category}.jsonl.gz``: product metadata.

Both are JSON lines. A review has ``user_id``, ``asin``, ``parent_asin``,
``rating`` (1-5 stars) and ``timestamp`` (Unix time in **milliseconds**)
besides text fields this loader drops (``title``, ``text``, ``images``,
``helpful_vote``, ``verified_purchase``). A metadata line has ``parent_asin``,
``title``, ``main_category``, ``features`` (list of str), ``description``
(list of str), ``categories`` (list of str, the category path), ``store``,
``details`` (a mapping, e.g. ``"Date First Available"``) and more. Plain
(uncompressed) copies of each file are accepted too.

Nothing is downloaded unless the user sets ``download: true``; offline, a
missing file is a :class:`DataError` naming the file, where it was looked for
and the URL it comes from. ``mirror`` replaces the built-in download location
(a base URL whose ``review_categories/`` and ``meta_categories/`` hold the files).

The category files are large (Books: 29M reviews, 9 GB of review JSON); the
loader streams them line by line and keeps only the four interaction fields and
the metadata of reviewed products.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from xdplug.api import Bool, Choice, DataError, RawDomain, RawDomains, Str

from .amazon import (
    AmazonCategoriesRecipe,
    _GZIP_ERRORS,
    _YEAR,
    _clean,
    _corrupt,
    _flatten,
    _open_text,
    _parse_line,
    _validate,
    locate,
    read_reviews,
)

logger = logging.getLogger(__name__)

#: where the release lives, tried in order (each holds review_categories/ and meta_categories/)
MIRRORS = (
    "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/",
    "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw/",
)
HOMEPAGE = "https://amazon-reviews-2023.github.io/"

#: the 33 categories of the 2023 release and "Unknown", spelled as in the file names
CATEGORIES = (
    "All_Beauty", "Amazon_Fashion", "Appliances", "Arts_Crafts_and_Sewing", "Automotive", "Baby_Products",
    "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl", "Cell_Phones_and_Accessories",
    "Clothing_Shoes_and_Jewelry", "Digital_Music", "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food",
    "Handmade_Products", "Health_and_Household", "Health_and_Personal_Care", "Home_and_Kitchen",
    "Industrial_and_Scientific", "Kindle_Store", "Magazine_Subscriptions", "Movies_and_TV",
    "Musical_Instruments", "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies", "Software",
    "Sports_and_Outdoors", "Subscription_Boxes", "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games",
    "Unknown",
)

#: review JSON key -> interaction column
REVIEW_FIELDS = {"user_id": "user", "parent_asin": "item", "rating": "rating", "timestamp": "timestamp"}
#: item table columns, in order
ITEM_COLUMNS = ("item", "title", "genres", "year", "features", "description", "categories", "main_category",
                "store")
#: template placeholder -> item column (every column exists; an unknown value is an empty string).
#: ``genres`` is the category path, or the main category where the path is empty.
TEXT_FIELDS = {"title": "title", "genres": "genres", "year": "year", "features": "features",
               "description": "description", "categories": "categories", "main_category": "main_category",
               "brand": "store", "store": "store"}
FEATURE_CHARS = 200
DESCRIPTION_CHARS = 200
#: ``details`` keys read (in order) for the item's year
DATE_KEYS = ("Date First Available", "Release date", "Original Release Date", "Publication date",
             "Publisher", "Date Published")

_PARENT = re.compile(r""""parent_asin"\s*:\s*"([^"]+)\"""")


# ----------------------------------------------------------------------------- files

def review_filename(category: str) -> str:
    return f"{category}.jsonl.gz"


def meta_filename(category: str) -> str:
    return f"meta_{category}.jsonl.gz"


def file_urls(filename: str, mirror: str = "") -> list[str]:
    """Where a 2023 file lives: on ``mirror`` if given, else on each of :data:`MIRRORS`."""
    folder = "meta_categories/" if filename.startswith("meta_") else "review_categories/"
    bases = [mirror.rstrip("/") + "/"] if mirror else list(MIRRORS)
    return [base + folder + filename for base in bases]


# ----------------------------------------------------------------------------- reviews

def reviews_to_inter(raw: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Rename review fields to the interaction columns, validate them, milliseconds to seconds."""
    for key in ("user_id", "parent_asin"):
        if key not in raw.columns:
            raise DataError(f"missing field; expected JSON lines with keys {', '.join(REVIEW_FIELDS)} (the "
                            f"Amazon Reviews 2023 layout), found {list(raw.columns)}", origin, key)
    inter = _validate(raw.rename(columns=REVIEW_FIELDS), origin, {v: k for k, v in REVIEW_FIELDS.items()})
    inter["timestamp"] = inter["timestamp"] / 1000.0
    return inter


# ----------------------------------------------------------------------------- metadata

def _iter_meta(path: Path, keep: set[str] | None) -> Iterator[tuple]:
    bad, first_bad, seen = 0, 0, 0
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            seen += 1
            if keep is not None:
                match = _PARENT.search(line)
                if match and match.group(1) not in keep:
                    continue
            record = _parse_line(line)
            if record is None or not record.get("parent_asin"):
                bad += 1
                first_bad = first_bad or number
                continue
            if keep is not None and str(record["parent_asin"]) not in keep:
                continue
            yield (record["parent_asin"], record.get("title"), record.get("features"), record.get("description"),
                   record.get("categories"), record.get("main_category"), record.get("store"),
                   record.get("details"))
    if bad:
        logger.warning("%s: skipped %d of %d metadata lines that are not a JSON object with a 'parent_asin' "
                       "(first at line %d)", path, bad, seen, first_bad)
    if seen == 0:
        raise DataError("empty file; expected JSON lines with keys parent_asin, title, features, description, "
                        "categories", str(path))
    if bad == seen:
        raise DataError(f"no line is a JSON object with a 'parent_asin' (first bad line {first_bad}); expected "
                        "JSON lines with keys parent_asin, title, features, description, categories (the Amazon "
                        "Reviews 2023 metadata layout)", str(path), "parent_asin")


def _year(details) -> str:
    """The first four-digit year among the date-like ``details`` entries."""
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return ""
    if not isinstance(details, dict):
        return ""
    for key in DATE_KEYS:
        match = _YEAR.search(str(details.get(key) or ""))
        if match:
            return match.group(1)
    return ""


def _joined(series: pd.Series, sep: str, limit: int | None = None) -> pd.Series:
    text = series.map(_flatten)
    if limit:  # cut before the regex work; 10x the kept length leaves room for markup
        text = text.str.slice(0, 10 * limit)
    text = _clean(text.str.replace("\u0001", sep, regex=False))
    return text.str.slice(0, limit).str.strip() if limit else text


def read_meta(path: str | Path, keep: Iterable[str] | None = None) -> pd.DataFrame:
    """Item table (:data:`ITEM_COLUMNS`) of a 2023 metadata file, restricted to ``keep`` parent ASINs."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", str(path))
    keep_set = None if keep is None else {str(k) for k in keep}
    try:
        rows = list(_iter_meta(path, keep_set))
    except _GZIP_ERRORS as exc:
        raise _corrupt(path, exc, HOMEPAGE) from None
    raw = pd.DataFrame(rows, columns=["item", "title", "features", "description", "categories", "main_category",
                                      "store", "details"])
    raw["item"] = raw["item"].astype(str)
    raw = raw.drop_duplicates("item", keep="first").reset_index(drop=True)
    items = pd.DataFrame({"item": raw["item"]})
    items["title"] = _clean(raw["title"])
    items["categories"] = _joined(raw["categories"], ", ")
    items["main_category"] = _clean(raw["main_category"])
    items["genres"] = items["categories"].where(items["categories"] != "", items["main_category"])
    items["year"] = raw["details"].map(_year)
    items["features"] = _joined(raw["features"], "; ", FEATURE_CHARS)
    items["description"] = _joined(raw["description"], " ", DESCRIPTION_CHARS)
    items["store"] = _clean(raw["store"])
    return items[list(ITEM_COLUMNS)].reset_index(drop=True)


# ----------------------------------------------------------------------------- domain

def load_amazon2023_domain(reviews_path: str | Path, meta_path: str | Path | None, name: str) -> RawDomain:
    """One 2023 category as a :class:`RawDomain`: validated interactions plus item text.

    ``meta_path=None`` gives an item table with IDs only (no text).
    """
    reviews_path = Path(reviews_path)
    raw = read_reviews(reviews_path, REVIEW_FIELDS, HOMEPAGE)
    inter = reviews_to_inter(raw, str(reviews_path))
    if meta_path is None:
        items = pd.DataFrame({c: pd.Series(dtype=str) for c in ITEM_COLUMNS})
    else:
        items = read_meta(meta_path, keep=inter["item"].unique())
    n_items = inter["item"].nunique()
    if meta_path is not None and n_items > len(items):
        logger.info("%s: %d of %d reviewed products have no metadata line", name, n_items - len(items), n_items)
    logger.info("%s: %d reviews, %d users, %d products (%d with metadata)", name, len(inter),
                inter["user"].nunique(), n_items, len(items))
    return RawDomain(name=name, inter=inter, items=items, origin=str(reviews_path))


class Amazon2023Recipe(AmazonCategoriesRecipe):
    """Two Amazon Reviews 2023 categories; users shared by ``user_id``, products by ``parent_asin``."""

    name = "amazon2023"
    description = ("Amazon Reviews 2023: two categories, users aligned by user_id, products by parent_asin "
                   "where both categories list them; item text from the metadata files")
    defaults = {
        "source": Choice("Books", CATEGORIES, help="source category (any case)"),
        "target": Choice("Movies_and_TV", CATEGORIES, help="target category (any case)"),
        "data_dir": Str("", help="folder holding the files (searched before the downloads folder)"),
        "download": Bool(False, help="download missing files (from mirror, else the McAuley lab's servers)"),
        "mirror": Str("", help="base URL holding review_categories/ and meta_categories/ (default: MIRRORS)"),
        "align_items": Choice("auto", ["auto", "id", "none"],
                              help="auto: by parent_asin when the categories share any, else none"),
    }

    TEXT_FIELDS = TEXT_FIELDS
    CATEGORIES = CATEGORIES
    RELEASE = "Amazon 2023"
    SUBDIR = "amazon2023"

    def _files(self) -> list[str]:
        return [name for c in (self.params["source"], self.params["target"])
                for name in (review_filename(c), meta_filename(c))]

    def origin(self) -> str:
        how = ("downloaded on first use from " + (self.params["mirror"] or "the McAuley lab")
               if self.params["download"] else "download: false, put them there by hand")
        return (f"Amazon Reviews 2023 (Hou et al. 2024, {HOMEPAGE}): {', '.join(self._files())} from "
                f"{' or '.join(map(str, self._dirs()))} ({how})")

    def load(self, cache_dir: str) -> RawDomains:
        """Read both categories; ``cache_dir`` is not used (files live in data_dir/downloads)."""
        dirs = self._dirs()
        download_to = self._download_dir() if self.params["download"] else None
        domains = []
        for category in (self.params["source"], self.params["target"]):
            found = [locate(name, dirs, download_to, file_urls(name, self.params["mirror"]), HOMEPAGE)
                     for name in (review_filename(category), meta_filename(category))]
            domains.append(load_amazon2023_domain(found[0], found[1], category))
        source, target = domains
        mode = self.params["align_items"]
        shared = len(set(source.inter["item"]) & set(target.inter["item"]))
        if mode == "auto":
            mode = "id" if shared else "none"
        logger.info("amazon2023: %d products reviewed in both categories; items aligned: %s", shared, mode)
        return RawDomains(
            source=source, target=target, align_users="id", align_items="id" if mode == "id" else None,
            text_fields=dict(self.TEXT_FIELDS),
            description=f"Amazon 2023 {source.name} -> {target.name}"
                        + (f" ({shared} shared products)" if mode == "id" else ""),
        )
