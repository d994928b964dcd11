"""``files``: a cross-domain benchmark from your own files.

Each domain is either a directory of RecBole atomic files (``dir:``, holding
``<name>.inter`` and optionally ``<name>.item``) or a table of interactions in
CSV, TSV or Parquet (``interactions:``) with an optional item table
(``items:``). A column mapping says which columns hold what; the config says
which entities the domains share and how they match::

    dataset:
      recipe: files
      params:
        source:
          interactions: data/books/ratings.csv
          items: data/books/books.csv
          columns: {user: user_id, item: book_id, rating: stars, timestamp: time}
          item_fields: {title: book_title, genres: shelves}
        target:
          dir: data/movies              # movies.inter (+ movies.item), RecBole atomic files
          item_fields:
            title: movie_title
            year: release_year
            genres: {column: class, split: " ", join: ", "}   # "Action Comedy" -> "Action, Comedy"
        align_users: id                 # id: the same user ID is the same person; none
        align_items: none               # id: same item ID; key: same normalised item_key; none
        item_key: title                 # the item field(s) compared when align_items: key ([title, year])

Everything is validated when the recipe is built (the structure of the params,
that every file exists and has the mapped columns) and when it is loaded
(column types, overlap of the shared entities), with a
:class:`~xdplug.errors.ConfigError` naming the config key or a
:class:`~xdplug.errors.DataError` naming the file and the column. Filtering,
alignment, splitting and item text are the engine's, as for every recipe.

Relative paths are read from the current directory. The prepared-data cache
key includes each file's size and modification time, so editing a file
prepares the data again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xdplug.api import (read_table, sniff_separator, ConfigError, DataError, DatasetRecipe, normalise_key, Option,
                        RawDomain, RawDomains, column_numbers)

#: interaction roles and the column each role is read from unless ``columns`` says otherwise
CSV_COLUMNS = {"user": "user", "item": "item", "rating": "rating", "timestamp": "timestamp"}
ATOMIC_COLUMNS = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
DOMAIN_KEYS = ("name", "dir", "interactions", "items", "columns", "item_fields", "item_id_column",
               "implicit", "sep")
ALIGN_USERS = ("id", "none")
ALIGN_ITEMS = ("id", "key", "none")
PARQUET = (".parquet", ".pq")
#: the keys of an item field given as a mapping: {column: genre, split: "|", join: ", "}
FIELD_KEYS = ("column", "split", "join")
DEFAULT_JOIN = ", "


def field_spec(value, path: str) -> dict:
    """An ``item_fields`` entry, checked: a column name, or ``{column, split, join}`` (values split on
    ``split``, stripped, empty parts dropped, joined with ``join``, default ``", "``)."""
    if isinstance(value, str):
        return {"column": value, "split": None, "join": DEFAULT_JOIN}
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a column name or a mapping {{column, split, join}}, got {value!r}")
    for key in value:
        if key not in FIELD_KEYS:
            raise ConfigError(f"{path}.{key}", "unknown key; allowed here: " + ", ".join(FIELD_KEYS))
    if not isinstance(value.get("column"), str):
        raise ConfigError(f"{path}.column", f"expected the item table's column name, got {value.get('column')!r}")
    for key in ("split", "join"):
        if key in value and not (isinstance(value[key], str) and (value[key] or key == "join")):
            raise ConfigError(f"{path}.{key}", f"expected a non-empty separator string, got {value[key]!r}"
                              if key == "split" else f"expected a string, got {value[key]!r}")
    if "join" in value and "split" not in value:
        raise ConfigError(f"{path}.join", "join needs split: the separator the values are split on")
    return {"column": value["column"], "split": value.get("split"), "join": value.get("join", DEFAULT_JOIN)}


def normalise_field(values: pd.Series, split: str | None, join: str) -> pd.Series:
    """Values split on ``split`` and joined with ``join`` ("Action|Comedy" -> "Action, Comedy")."""
    if split is None:
        return values

    def one(value):
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return value
        return join.join(part.strip() for part in str(value).split(split) if part.strip())

    return values.map(one)


def key_fields(item_key) -> list[str]:
    """``item_key`` as a list of field names (one field, or several combined into one key)."""
    return [item_key] if isinstance(item_key, str) else list(item_key)


def combined_key_column(fields: list[str]) -> str:
    """The item-table column holding a key combined from several fields (``title+year``)."""
    return "+".join(fields)


def combined_keys(items: pd.DataFrame, fields: list[str]) -> pd.Series:
    """Each field normalised, joined by spaces; no key (None) where any field has no value."""
    def part(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        return normalise_key(value)

    parts = pd.DataFrame({f: items[f].map(part) for f in fields}, index=items.index)
    joined = parts.apply(lambda row: " ".join(row), axis=1) if len(parts) else pd.Series([], dtype=object)
    return joined.where((parts != "").all(axis=1), None)


def _cwd_hint(path: Path) -> str:
    return "" if path.is_absolute() else f" (relative paths are read from {Path.cwd()})"


class DomainSpec:
    """One domain's params, checked: where the files are and which columns hold what."""

    def __init__(self, role: str, spec, path: str):
        self.role, self.path = role, path
        if not isinstance(spec, dict):
            raise ConfigError(path, f"expected a mapping with dir: (a folder of RecBole atomic files) or "
                                    f"interactions: (a CSV, TSV or Parquet file), got {spec!r}")
        if not spec:
            raise ConfigError(path, "missing: describe the domain's files with dir: (a folder of RecBole "
                                    "atomic files) or interactions: (a CSV, TSV or Parquet file)")
        for key in spec:
            if key not in DOMAIN_KEYS:
                raise ConfigError(f"{path}.{key}", "unknown key; allowed here: " + ", ".join(DOMAIN_KEYS))
        for key in ("name", "dir", "interactions", "items", "item_id_column", "sep"):
            if key in spec and not isinstance(spec[key], str):
                raise ConfigError(f"{path}.{key}", f"expected str, got {spec[key]!r}")
        for key in ("columns", "item_fields"):
            value = spec.get(key, {})
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and (isinstance(v, str) or key == "item_fields" and isinstance(v, dict))
                    for k, v in value.items()):
                raise ConfigError(f"{path}.{key}", f"expected a mapping of names to column names, got {value!r}")
        if "implicit" in spec and not isinstance(spec["implicit"], bool):
            raise ConfigError(f"{path}.implicit", f"expected true or false, got {spec['implicit']!r}")
        unknown = set(spec.get("columns", {})) - set(CSV_COLUMNS)
        if unknown:
            raise ConfigError(f"{path}.columns.{sorted(unknown)[0]}",
                              "unknown role; allowed: " + ", ".join(CSV_COLUMNS))
        for field in spec.get("item_fields", {}):
            if not field.isidentifier():
                raise ConfigError(f"{path}.item_fields.{field}",
                                  "must be a template field name like title (used as {title})")
        if ("dir" in spec) == ("interactions" in spec):
            raise ConfigError(path, "give exactly one of dir: (a folder of RecBole atomic files) and "
                                    "interactions: (a CSV, TSV or Parquet file)")
        self.implicit = bool(spec.get("implicit", False))
        self.sep = spec.get("sep")
        #: template field -> {column, split, join}
        self.field_specs = {field: field_spec(value, f"{path}.item_fields.{field}")
                            for field, value in spec.get("item_fields", {}).items()}
        self.item_fields = {field: f["column"] for field, f in self.field_specs.items()}
        if "dir" in spec:
            folder = Path(spec["dir"]).expanduser()
            if not folder.is_dir():
                raise DataError("directory not found" + _cwd_hint(folder), str(folder), f"{path}.dir")
            stem = spec.get("name")
            if stem is None:
                inters = sorted(folder.glob("*.inter"))
                if len(inters) != 1:
                    found = ", ".join(p.name for p in inters) or "none"
                    raise DataError(f"expected one <name>.inter file (found {found}); set {path}.name to pick one",
                                    str(folder))
                stem = inters[0].stem
            self.name = spec.get("name") or stem
            self.inter_path = folder / f"{stem}.inter"
            if not self.inter_path.is_file():
                raise DataError("file not found (RecBole atomic interactions)", str(self.inter_path))
            item_path = folder / f"{stem}.item"
            self.items_path = Path(spec["items"]).expanduser() if "items" in spec else (
                item_path if item_path.is_file() else None)
            defaults = ATOMIC_COLUMNS
        else:
            self.inter_path = Path(spec["interactions"]).expanduser()
            self.items_path = Path(spec["items"]).expanduser() if "items" in spec else None
            self.name = spec.get("name") or self.inter_path.resolve().parent.name or role
            defaults = ATOMIC_COLUMNS if self.inter_path.suffix == ".inter" else CSV_COLUMNS
        for key, file in (("interactions", self.inter_path), ("items", self.items_path)):
            if file is not None and not file.is_file():
                raise DataError("file not found" + _cwd_hint(file), str(file), f"{path}.{key}")
        given = spec.get("columns", {})
        #: role -> column name, and which roles the config named explicitly (those must exist)
        self.columns = {**defaults, **given}
        self.explicit = set(given)
        self.item_id_column = spec.get("item_id_column") or self.columns["item"]
        # the header is read now: a missing column is an error before any work
        header = self._header(self.inter_path)
        for role_ in ("user", "item"):
            self._require(self.columns[role_], header, self.inter_path, f"columns.{role_}")
        for role_ in ("rating", "timestamp"):
            if role_ in self.explicit and not (role_ == "rating" and self.implicit):
                self._require(self.columns[role_], header, self.inter_path, f"columns.{role_}")
        if self.items_path is not None:
            item_header = self._header(self.items_path)
            self._require(self.item_id_column, item_header, self.items_path,
                          "item_id_column" if "item_id_column" in spec else "columns.item")
            for field, column in self.item_fields.items():
                self._require(column, item_header, self.items_path, f"item_fields.{field}")
        elif self.item_fields:
            raise ConfigError(f"{path}.item_fields", "item fields need an item table: set items: "
                                                     "(or put a <name>.item file next to the .inter file)")

    # -- reading ------------------------------------------------------------------------
    def fingerprint(self) -> list:
        files = [self.inter_path] + ([self.items_path] if self.items_path else [])
        out = []
        for file in files:
            stat = file.stat()
            out.append([str(file.resolve()), stat.st_size, stat.st_mtime_ns])
        return out

    def _require(self, column: str, header: list[str], file: Path, key: str) -> None:
        if column not in header:
            hint = ""
            if len(header) == 1:
                for sep in (";", ",", "\t", "|"):
                    if sep in header[0]:
                        hint = f"; the header looks {sep!r}-separated: set {self.path}.sep"
                        break
            raise DataError(f"missing column {column!r} ({self.path}.{key}); found columns {header}{hint}",
                            str(file), column)

    def _separator(self, file: Path) -> str:
        sep = self.sep or sniff_separator(file)
        if sep is None:
            raise DataError(f"cannot tell the column separator; set {self.path}.sep", str(file))
        return sep

    def _header(self, file: Path) -> list[str]:
        if file.suffix == ".inter" or file.suffix == ".item":
            with file.open(encoding="utf-8", errors="replace") as handle:
                first = handle.readline().rstrip("\n\r")
            if "\t" not in first and ":" not in first:
                raise DataError(f"expected a RecBole atomic header (name:type columns, tab separated), got "
                                f"{first[:80]!r}", str(file))
            return [c.partition(":")[0] for c in first.split("\t")]
        if file.suffix.lower() in PARQUET:
            try:  # the schema alone, not the table
                import pyarrow.parquet as pq

                return list(pq.read_schema(file).names)
            except ImportError:
                pass
            except Exception as exc:  # noqa: BLE001 - pyarrow raises its own error types
                raise DataError(f"cannot read the Parquet file: {exc}", str(file)) from None
            return list(self._read(file).columns)
        try:
            return list(pd.read_csv(file, sep=self._separator(file), nrows=0, dtype=str).columns)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the header: {str(exc).strip()}", str(file)) from None

    def _read(self, file: Path) -> pd.DataFrame:
        return read_table(file, "the file", sep=None if file.suffix in (".inter", ".item") or
                          file.suffix.lower() in PARQUET else self._separator(file))

    def load(self) -> RawDomain:
        raw = self._read(self.inter_path)
        if raw.empty:
            raise DataError("no interactions (the file has a header and no rows)", str(self.inter_path))
        c = self.columns
        inter = pd.DataFrame({"user": raw[c["user"]], "item": raw[c["item"]]})
        for role_ in ("user", "item"):
            column = c[role_]
            empty = inter[role_].isna() | (inter[role_].astype(str).str.strip() == "")
            if empty.any():
                row = int(np.flatnonzero(empty.to_numpy())[0])
                raise DataError(f"empty value in row {row + 1}", str(self.inter_path), column)
            inter[role_] = inter[role_].astype(str).str.strip()
        if not self.implicit and c["rating"] in raw.columns:
            inter["rating"] = column_numbers(raw[c["rating"]], str(self.inter_path), c["rating"])
        else:
            inter["rating"] = np.nan  # implicit: every row is a positive
        if c["timestamp"] in raw.columns:
            inter["timestamp"] = column_numbers(raw[c["timestamp"]], str(self.inter_path), c["timestamp"], dates=True)
        else:
            inter["timestamp"] = np.nan
        items = pd.DataFrame({"item": pd.Series([], dtype=str)})
        if self.items_path is not None:
            table = self._read(self.items_path)
            ids = table[self.item_id_column]
            if ids.isna().any():
                row = int(np.flatnonzero(ids.isna().to_numpy())[0])
                raise DataError(f"empty item ID in row {row + 1}", str(self.items_path), self.item_id_column)
            items = table.drop(columns=[self.item_id_column]).copy()
            for field, f in self.field_specs.items():
                items[field] = normalise_field(table[f["column"]], f["split"], f["join"])
            # repeated item IDs stay: the engine's preparation drops exact repeats and warns
            # about conflicting ones (xdplug.data.raw.dedupe_items), the same for every recipe
            items.insert(0, "item", ids.astype(str).str.strip())
        return RawDomain(self.name, inter, items, str(self.inter_path))


class FilesRecipe(DatasetRecipe):
    name = "files"
    description = "Your own two domains: RecBole atomic files or CSV/TSV/Parquet tables with a column mapping"
    defaults = {"source": {}, "target": {}, "align_users": "none", "align_items": "none",
                "item_key": Option("title", type=(str, list, tuple), item_type=str,
                                   help="the item field compared when align_items: key (any field of both item "
                                        "tables, `item` for the item ID), or a list of fields combined into one key")}

    def __init__(self, params: dict | None = None, path: str | None = None):
        self._path = path or "dataset.params"
        super().__init__(params, self._path)
        p = self.params
        for key, allowed in (("align_users", ALIGN_USERS), ("align_items", ALIGN_ITEMS)):
            if p[key] not in allowed:
                raise ConfigError(f"{self._path}.{key}", f"expected one of {', '.join(allowed)}, got {p[key]!r}")
        fields = key_fields(p["item_key"])
        if not fields or any(not f.strip() for f in fields) or len(set(fields)) < len(fields):
            raise ConfigError(f"{self._path}.item_key", "expected an item field name like title, or a list of "
                                                        f"distinct field names like [title, year], got {p['item_key']!r}")
        self.domains: dict[str, DomainSpec] = {}
        if not p["source"] and not p["target"]:
            return  # listed by `xdplug datasets`; a config must name both domains (checked in load)
        for role in ("source", "target"):
            self.domains[role] = DomainSpec(role, p[role], f"{self._path}.{role}")
        # the prepared-data cache follows the files' contents, not only their names
        self.params["files"] = {role: d.fingerprint() for role, d in self.domains.items()}

    @classmethod
    def update_columns(cls, params: dict) -> dict[str, dict[str, str]]:
        """The target's ``columns`` and ``item_fields`` (``item_id_column`` for the item table's IDs); a target
        of RecBole atomic files reads ``user_id``/``item_id`` unless ``columns`` says otherwise."""
        target = (params or {}).get("target") if isinstance(params, dict) else None
        if not isinstance(target, dict):
            return {"interactions": {}, "items": {}}
        given, fields = target.get("columns"), target.get("item_fields")
        atomic = "dir" in target or str(target.get("interactions", "")).endswith(".inter")
        columns = dict(ATOMIC_COLUMNS) if atomic else {}  # RecBole atomic files: user_id, item_id
        columns.update({k: v for k, v in given.items() if isinstance(v, str)} if isinstance(given, dict) else {})
        items = {field: value.get("column") if isinstance(value, dict) else value
                 for field, value in fields.items()} if isinstance(fields, dict) else {}
        item_id = target.get("item_id_column") or columns.get("item")
        if item_id:
            items["item"] = item_id
        return {"interactions": columns, "items": {k: v for k, v in items.items() if isinstance(v, str)}}

    def origin(self) -> str:
        if not self.domains:
            return "your files: dataset.params.source and .target (see docs/own_data.md)"
        return "; ".join(f"{role}: {d.inter_path}" for role, d in self.domains.items())

    def _require_domains(self) -> None:
        for role in ("source", "target"):
            if role not in self.domains:
                raise ConfigError(f"{self._path}.{role}", "missing; describe the domain's files "
                                                          "(dir: or interactions:)")

    def load(self, cache_dir: str) -> RawDomains:
        self._require_domains()
        p = self.params
        source, target = self.domains["source"].load(), self.domains["target"].load()
        align_users = None if p["align_users"] == "none" else "id"
        align_items = None if p["align_items"] == "none" else p["align_items"]
        if align_users == "id" and not set(source.inter["user"]) & set(target.inter["user"]):
            raise DataError(
                f"the domains share no user ID (source users look like {source.inter['user'].iloc[0]!r}, "
                f"target users like {target.inter['user'].iloc[0]!r}), but {self._path}.align_users is 'id'; "
                "use the same IDs in both files or set align_users: none", origin_of(source, target), "align_users")
        if align_items == "id" and not set(source.inter["item"]) & set(target.inter["item"]):
            raise DataError(
                f"the domains share no item ID (source items look like {source.inter['item'].iloc[0]!r}, "
                f"target items like {target.inter['item'].iloc[0]!r}), but {self._path}.align_items is 'id'; "
                "use align_items: key to match items by a field, or none", origin_of(source, target), "align_items")
        wanted = key_fields(p["item_key"])
        key_field = wanted[0] if len(wanted) == 1 else combined_key_column(wanted)
        shown = key_field if len(wanted) == 1 else " + ".join(wanted)
        if align_items == "key":
            keys = {}
            for role, domain, spec in (("source", source, self.domains["source"]),
                                       ("target", target, self.domains["target"])):
                if spec.items_path is None:
                    raise DataError(f"align_items: key compares the item field {shown!r}, but the {role} domain "
                                    "has no item table (items:)", str(spec.inter_path), "items")
                for field in wanted:
                    if field not in domain.items.columns:
                        raise DataError(f"missing item field {field!r} ({self._path}.item_key, align_items: key); "
                                        f"map it with {self._path}.{role}.item_fields.{field}; found "
                                        f"{[c for c in domain.items.columns if c != 'item']}",
                                        str(spec.items_path), field)
                if len(wanted) > 1:  # one key from several fields: the engine compares one column
                    domain.items[key_field] = combined_keys(domain.items, wanted)
                values = domain.items[key_field].dropna().map(normalise_key)
                keys[role] = set(values[values != ""])
            if not keys["source"] & keys["target"]:
                raise DataError(f"no item of the source has the same normalised {shown!r} as an item of the "
                                f"target, but {self._path}.align_items is 'key'; set align_items: none "
                                "if the domains share no items", str(self.domains["target"].items_path), key_field)
        fields = {}
        for domain in (source, target):
            fields.update({c: c for c in domain.items.columns if c != "item" and (c != key_field or c in wanted)})
        return RawDomains(
            source=source, target=target, align_users=align_users, align_items=align_items,
            item_key_field=key_field, text_fields=fields,
            description=(f"your files: {source.name} ({source.origin}) -> {target.name} ({target.origin}); "
                         f"users aligned by {p['align_users']}, items by {p['align_items']}"),
        )


def origin_of(source: RawDomain, target: RawDomain) -> str:
    return f"{source.origin} and {target.origin}"


# ----------------------------------------------------------------------------- demo files

DEMO_GENRES = ("science fiction", "romance", "crime", "fantasy")
_WORDS = {
    "science fiction": ("Star", "Orbit", "Android", "Nebula", "Signal", "Colony", "Quantum", "Eclipse"),
    "romance": ("Heart", "Summer", "Letters", "Promise", "Wedding", "Kiss", "Paris", "Moonlight"),
    "crime": ("Murder", "Detective", "Alibi", "Heist", "Witness", "Shadow", "Verdict", "Killer"),
    "fantasy": ("Dragon", "Wizard", "Kingdom", "Sword", "Crown", "Spell", "Forest", "Quest"),
}


def _demo_titles(rng, n: int, offset: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        genre = DEMO_GENRES[i % len(DEMO_GENRES)]
        a, b = rng.choice(_WORDS[genre], size=2, replace=False)
        out.append((f"The {a} {b} {offset + i}", genre))
    return out


def write_demo(folder: str | Path, seed: int = 0, n_users: int = 120, n_books: int = 60, n_movies: int = 60,
               shared_users: int = 100) -> dict[str, Path]:
    """Small genre-driven files for trying the ``files`` recipe (the walkthrough in docs/own_data.md).

    Books (source) are a CSV table with their own column names and dates as
    timestamps; movies (target) are RecBole atomic files. Most readers are
    also viewers under the same ID. Also writes new movie ratings, today's
    movie catalogue (three movies more) and a new viewer's history, for
    ``xdplug update`` and ``xdplug recommend --history``. Returns the paths written.
    """
    rng = np.random.default_rng(seed)
    root = Path(folder)
    (root / "books").mkdir(parents=True, exist_ok=True)
    (root / "movies").mkdir(parents=True, exist_ok=True)
    taste = rng.dirichlet(np.full(len(DEMO_GENRES), 0.3), size=n_users + 1)
    books = _demo_titles(rng, n_books, 1)
    movies = _demo_titles(rng, n_movies + 3, 101)
    new_movies, movies = movies[n_movies:], movies[:n_movies]

    def pick(user: int, catalog, k: int):
        genre = np.array([DEMO_GENRES.index(g) for _, g in catalog])
        p = taste[user][genre] + 0.02
        return rng.choice(len(catalog), size=k, replace=False, p=p / p.sum())

    readers = [f"u{i}" for i in range(n_users)]
    viewers = readers[:shared_users] + [f"v{i}" for i in range(n_users - shared_users)]
    rows = []
    for u, name in enumerate(readers):
        for j in pick(u, books, 16):
            day = 1 + int(rng.integers(0, 28))
            rows.append((name, f"b{j + 1}", int(rng.choice([5, 4, 4, 2])), f"2023-03-{day:02d}"))
    pd.DataFrame(rows, columns=["reader", "book", "stars", "read_at"]).to_csv(root / "books" / "ratings.csv", index=False)
    pd.DataFrame({"book": [f"b{j + 1}" for j in range(n_books)], "name": [t for t, _ in books],
                  "shelves": [g for _, g in books]}).to_csv(root / "books" / "books.csv", index=False)
    rows = []
    for u, name in enumerate(viewers):
        for j in pick(u, movies, 7):
            rows.append((name, f"m{j + 1}", float(rng.choice([5, 4, 4, 5, 2])), float(1_700_000_000 + u * 100 + j)))
    inter = pd.DataFrame(rows, columns=["user_id:token", "item_id:token", "rating:float", "timestamp:float"])
    inter.to_csv(root / "movies" / "movies.inter", sep="\t", index=False)
    years = 1990 + (np.arange(n_movies + 3) * 7) % 33
    items = pd.DataFrame({"item_id:token": [f"m{j + 1}" for j in range(n_movies)],
                          "movie_title:token_seq": [t for t, _ in movies],
                          "release_year:token": years[:n_movies].astype(str),
                          "genre:token_seq": [g for _, g in movies]})
    items.to_csv(root / "movies" / "movies.item", sep="\t", index=False)
    # new target interactions: known viewers rate more movies, including three new ones
    new_ids = [f"m{n_movies + j + 1}" for j in range(len(new_movies))]
    catalog = movies + new_movies
    rows = []
    for u in rng.choice(len(viewers), size=40, replace=False):
        for j in pick(int(u), catalog, 14)[:4]:
            rows.append((viewers[u], f"m{j + 1}", int(rng.choice([5, 4, 4]))))
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(root / "new_ratings.csv", index=False)
    # today's catalogue, in the template's field names: every movie, the three new ones included
    pd.DataFrame({"item": [f"m{j + 1}" for j in range(n_movies)] + new_ids, "title": [t for t, _ in catalog],
                  "year": years.astype(str), "genres": [g for _, g in catalog]}).to_csv(
        root / "movie_catalog.csv", index=False)
    fantasy = [f"m{j + 1}" for j, (_, g) in enumerate(movies) if g == "fantasy"][:3]
    (root / "new_user.txt").write_text("\n".join(fantasy) + "\n")
    return {"books": root / "books", "movies": root / "movies", "new_ratings": root / "new_ratings.csv",
            "movie_catalog": root / "movie_catalog.csv", "new_user": root / "new_user.txt"}


def main(argv: list[str] | None = None) -> int:
    """``python -m xdplug_datasets.files demo DIR``: write the walkthrough's example files."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m xdplug_datasets.files")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write small genre-driven example domains into DIR")
    demo.add_argument("folder")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written = write_demo(args.folder, seed=args.seed)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
