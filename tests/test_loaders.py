"""Amazon 2018, Amazon 2023 and Douban loaders on small generated files: counts, text fields, alignment,
errors, downloads (faked), and each recipe as the engine sees it (registered, its contract)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from xdplug.data.raw import RawDomains
from xdplug.errors import ConfigError, DataError
from xdplug.testing import check_dataset
from xdplug_datasets import amazon, amazon2023
from xdplug_datasets.amazon import AmazonRecipe, load_amazon_domain
from xdplug_datasets.amazon2023 import Amazon2023Recipe, load_amazon2023_domain
from xdplug_datasets.douban import DoubanRecipe, load_douban_domain


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    """Keep downloads (and any cache) away from the real home."""
    monkeypatch.setenv("XDPLUG_HOME", str(tmp_path / "home"))


# ----------------------------------------------------------------------------- Amazon samples

def _review(user, item, rating, ts, **extra):
    return {"overall": rating, "verified": True, "reviewTime": "01 1, 2015", "reviewerID": user,
            "asin": item, "reviewerName": "x", "reviewText": "text", "summary": "s",
            "unixReviewTime": ts, **extra}


BOOK_REVIEWS = [
    _review("A1", "0000000001", 5.0, 1420070400),
    _review("A1", "0000000002", 4.0, 1420070500),
    _review("A2", "0000000001", 3.0, 1420070600, style={"Format:": " Paperback"}),
    _review("A3", "0000000003", 2.0, 1420070700),
    _review("A3", "0000000002", 5.0, 1420070800),
]
MOVIE_REVIEWS = [
    _review("A1", "B00000MV01", 5.0, 1420071000),
    _review("A2", "B00000MV01", 4.0, 1420072000),
    _review("A4", "B00000MV02", 1.0, 1420073000),
]
LONG = "A very long description. " * 20

BOOK_META_LINES = [
    json.dumps({"asin": "0000000001", "title": "The Hobbit", "category": ["Books", "Literature &amp; Fiction"],
                "brand": "J. R. R. Tolkien", "description": [LONG, "second part"], "date": "September 21, 1937"}),
    # a Python-literal line, as in the older dumps: single quotes, not JSON
    str({"asin": "0000000002", "title": "Dune", "categories": [["Books", "Science Fiction"]],
         "description": "Desert <b>planet</b>."}),
    "{this line is broken",
    json.dumps({"asin": "9999999999", "title": "Not reviewed"}),
    json.dumps({"asin": "0000000001", "title": "Duplicate line, ignored"}),
]
MOVIE_META_LINES = [
    json.dumps({"asin": "B00000MV01", "title": "Alien", "category": ["Movies & TV", "Horror"],
                "main_cat": "Movies & TV", "rank": "1,007,436inMoviesTV("}),
]


def _jsonl(records) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def _write(path: Path, data: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def amazon_dir(tmp_path) -> Path:
    folder = tmp_path / "amazon"
    folder.mkdir()
    _write(folder / "Books_5.json.gz", _jsonl(BOOK_REVIEWS), gz=True)
    _write(folder / "meta_Books.json.gz", _jsonl(BOOK_META_LINES), gz=True)
    # plain (uncompressed) twins are accepted too
    _write(folder / "Movies_and_TV_5.json", _jsonl(MOVIE_REVIEWS), gz=False)
    _write(folder / "meta_Movies_and_TV.json", _jsonl(MOVIE_META_LINES), gz=False)
    return folder


def test_amazon_domain_function(amazon_dir, caplog):
    with caplog.at_level(logging.WARNING):
        domain = load_amazon_domain(amazon_dir / "Books_5.json.gz", amazon_dir / "meta_Books.json.gz", "Books")
    assert domain.name == "Books"
    assert list(domain.inter.columns) == ["user", "item", "rating", "timestamp"]
    assert len(domain.inter) == 5
    assert domain.inter["user"].nunique() == 3 and domain.inter["item"].nunique() == 3
    assert domain.inter["item"].iloc[0] == "0000000001"  # leading zeros kept: IDs stay strings
    assert domain.inter["rating"].tolist() == [5.0, 4.0, 3.0, 2.0, 5.0]
    assert domain.inter["timestamp"].iloc[0] == 1420070400.0
    items = domain.items.set_index("item")
    assert list(domain.items.columns) == ["item", "title", "category", "brand", "description", "year"]
    assert sorted(items.index) == ["0000000001", "0000000002"]  # not-reviewed item dropped, 0003 has no meta
    hobbit = items.loc["0000000001"]
    assert hobbit["title"] == "The Hobbit"
    assert hobbit["category"] == "Books, Literature & Fiction"
    assert hobbit["brand"] == "J. R. R. Tolkien"
    assert hobbit["year"] == "1937"
    assert len(hobbit["description"]) <= amazon.DESCRIPTION_CHARS
    assert hobbit["description"].startswith("A very long description.")
    dune = items.loc["0000000002"]
    assert dune["title"] == "Dune" and dune["category"] == "Books, Science Fiction"
    assert dune["description"] == "Desert planet ." and dune["year"] == "" and dune["brand"] == ""
    assert "skipped 1 of 5 metadata lines" in caplog.text


def test_amazon_recipe(amazon_dir):
    recipe = AmazonRecipe({"data_dir": str(amazon_dir), "source": "books", "target": "Movies_and_TV"})
    assert "Books_5.json.gz" in recipe.origin() and "meta_Movies_and_TV.json.gz" in recipe.origin()
    raw = recipe.load(str(amazon_dir))
    assert isinstance(raw, RawDomains)
    assert (raw.source.name, raw.target.name) == ("Books", "Movies_and_TV")
    assert raw.align_users == "id" and raw.align_items is None
    assert len(raw.source.inter) == 5 and len(raw.target.inter) == 3
    assert set(raw.source.inter["user"]) & set(raw.target.inter["user"]) == {"A1", "A2"}
    assert raw.text_fields["title"] == "title" and raw.text_fields["genres"] == "category"
    for field in raw.text_fields.values():
        assert field in raw.source.items.columns and field in raw.target.items.columns
    alien = raw.target.items.set_index("item").loc["B00000MV01"]
    assert alien["title"] == "Alien" and alien["category"] == "Movies & TV, Horror"
    assert alien["description"] == "" and alien["year"] == ""


def test_amazon_full_files_option(amazon_dir):
    recipe = AmazonRecipe({"data_dir": str(amazon_dir), "five_core": False})
    with pytest.raises(DataError, match=r"Books\.json\.gz.*file not found.*categoryFiles/Books\.json\.gz"):
        recipe.load(str(amazon_dir))


def test_amazon_config_errors():
    with pytest.raises(ConfigError, match="Did you mean 'Books'"):
        AmazonRecipe({"source": "Bookz"})
    with pytest.raises(ConfigError, match="target: must differ from source"):
        AmazonRecipe({"source": "Books", "target": "books"})
    with pytest.raises(ConfigError, match="five_core"):
        AmazonRecipe({"five_core": "yes"})


def test_amazon_missing_file_offline(tmp_path):
    recipe = AmazonRecipe({"data_dir": str(tmp_path)})
    with pytest.raises(DataError, match=r"Books_5\.json\.gz: file not found in .*download: true") as info:
        recipe.load(str(tmp_path))
    assert "categoryFilesSmall/Books_5.json.gz" in str(info.value)


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self


def test_amazon_download(tmp_path, monkeypatch):
    served = {
        "Books_5.json.gz": gzip.compress(_jsonl(BOOK_REVIEWS)),
        "meta_Books.json.gz": gzip.compress(_jsonl(BOOK_META_LINES)),
        "Movies_and_TV_5.json.gz": gzip.compress(_jsonl(MOVIE_REVIEWS)),
        "meta_Movies_and_TV.json.gz": gzip.compress(_jsonl(MOVIE_META_LINES)),
    }
    urls = []

    def fake_urlopen(request, timeout=None):
        url = request.full_url
        urls.append(url)
        if url.startswith(amazon.MIRRORS[0]):  # first mirror down: the second one serves
            raise urllib.error.URLError("unreachable")
        return _FakeResponse(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(amazon.urllib.request, "urlopen", fake_urlopen)
    raw = AmazonRecipe({"download": True}).load(str(tmp_path))
    assert len(raw.source.inter) == 5 and len(raw.target.inter) == 3
    folder = amazon.downloads_dir() / "amazon"
    assert sorted(p.name for p in folder.iterdir()) == sorted(served)  # no .part files left
    assert amazon.MIRRORS[1] + "categoryFilesSmall/Books_5.json.gz" in urls
    assert amazon.MIRRORS[1] + "metaFiles2/meta_Books.json.gz" in urls
    # a second load finds the files and does not download again
    urls.clear()
    AmazonRecipe({"download": True}).load(str(tmp_path))
    assert urls == []


def test_amazon_download_rejects_non_gzip(tmp_path, monkeypatch):
    monkeypatch.setattr(amazon.urllib.request, "urlopen",
                        lambda request, timeout=None: _FakeResponse(b"<html>not found</html>"))
    with pytest.raises(DataError, match=r"Books_5\.json\.gz: download failed from every mirror.*gzip"):
        AmazonRecipe({"download": True}).load(str(tmp_path))
    assert list((amazon.downloads_dir() / "amazon").iterdir()) == []


def test_amazon_download_rejects_short_read(tmp_path, monkeypatch):
    class Short(_FakeResponse):
        headers = {"Content-Length": "999999"}

    monkeypatch.setattr(amazon.urllib.request, "urlopen",
                        lambda request, timeout=None: Short(gzip.compress(b"{}")))
    with pytest.raises(DataError, match=r"got \d+ of 999999 bytes"):
        amazon.download_file("meta_Books.json.gz", tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []


def _reviews_file(tmp_path, records, gz=True, name="Books_5.json.gz") -> Path:
    return _write(tmp_path / name, _jsonl(records) if records else b"", gz)


def test_amazon_bad_reviews(tmp_path):
    meta = _write(tmp_path / "meta.json", _jsonl(BOOK_META_LINES), gz=False)
    path = _reviews_file(tmp_path, [{"asin": "1", "overall": 5.0}])
    with pytest.raises(DataError, match=r"Books_5\.json\.gz, field 'reviewerID': missing field; expected"):
        load_amazon_domain(path, meta, "Books")
    path = _reviews_file(tmp_path, [_review("A1", "1", 5.0, 1), _review("A2", "2", "five", 2)])
    with pytest.raises(DataError, match=r"field 'overall': expected numbers, got 'five' \(row 2\)"):
        load_amazon_domain(path, meta, "Books")
    path = _reviews_file(tmp_path, [_review("A1", "1", 5.0, 1), _review(None, "2", 4.0, 2)])
    with pytest.raises(DataError, match=r"field 'reviewerID': empty value in row 2"):
        load_amazon_domain(path, meta, "Books")
    path = _reviews_file(tmp_path, [])
    with pytest.raises(DataError, match=r"Books_5\.json\.gz: empty file; expected JSON lines with keys reviewerID"):
        load_amazon_domain(path, meta, "Books")
    path = _reviews_file(tmp_path, [_review("A1", "1", 5.0, 1), "not json"])
    with pytest.raises(DataError, match=r"line 2 is not a JSON object: 'not json'"):
        load_amazon_domain(path, meta, "Books")
    path = tmp_path / "Books_5.json.gz"
    path.write_bytes(gzip.compress(_jsonl(BOOK_REVIEWS))[:-30])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_amazon_domain(path, meta, "Books")
    with pytest.raises(DataError, match=r"nope\.json\.gz: file not found"):
        load_amazon_domain(tmp_path / "nope.json.gz", meta, "Books")


def test_amazon_bad_meta(tmp_path):
    reviews = _reviews_file(tmp_path, BOOK_REVIEWS)
    empty = _write(tmp_path / "meta_empty.json.gz", b"", gz=True)
    with pytest.raises(DataError, match=r"meta_empty\.json\.gz: empty file"):
        load_amazon_domain(reviews, empty, "Books")
    junk = _write(tmp_path / "meta_junk.json", b"<html>\n{'title': 'no asin'}\n", gz=False)
    with pytest.raises(DataError, match=r"meta_junk\.json, field 'asin': no line is a JSON object with an 'asin'"):
        load_amazon_domain(reviews, junk, "Books")


# ----------------------------------------------------------------------------- Douban samples

REVIEW_HEADER = '"user_id"\t"{item}"\t"rating"\t"labels"\t"comment"\t"time"\t"ID"\n'


def _tsv_row(*values) -> str:
    return "\t".join(f'"{v}"' for v in values) + "\n"


def _douban_dir(tmp_path) -> Path:
    folder = tmp_path / "douban" / "douban_dataset(text information)"
    folder.mkdir(parents=True)
    (folder / "bookreviews_cleaned.txt").write_text(
        REVIEW_HEADER.format(item="book_id")
        + _tsv_row("u1", "10", "5", "小说|经典", "好书", "2013-04-19", "1")
        + _tsv_row("u1", "11", "4", "", "第一行\n第二行", "2013-05-01", "2")   # newline inside quotes
        + _tsv_row("u2", "10", "3", "", "", "2014-01-02", "3")
        + _tsv_row("u3", "12", "2", "", "", "2015-06-30", "4"),
        encoding="utf-8")
    (folder / "books_cleaned.txt").write_text(
        '"title"\t"author"\t"book_id"\t"UID"\n'
        + _tsv_row("活着", "余华", "1000001", "10")
        + _tsv_row("三体", "刘慈欣", "1000002", "11")
        + _tsv_row("围城", "钱钟书", "1000003", "12")
        + _tsv_row("没人评", "某人", "1000004", "13"),
        encoding="utf-8")
    (folder / "moviereviews_cleaned.txt").write_text(
        REVIEW_HEADER.format(item="movie_id")
        + _tsv_row("u1", "20", "5", "", "", "2016-02-03", "1")
        + _tsv_row("u2", "21", "4", "", "", "2016-02-04", "2")
        + _tsv_row("u4", "20", "1", "", "", "2016-02-05", "3"),
        encoding="utf-8")
    (folder / "movies_cleaned.txt").write_text(
        '"name"\t"director"\t"summary"\t"tag"\t"pubdate"\t"movie_id"\t"UID"\n'
        + _tsv_row("霸王别姬", "陈凯歌", "一部电影。" * 60, "剧情|爱情|同性", "1993-01-01(中国香港)", "1291546", "20")
        + _tsv_row("盗梦空间", "诺兰", "", "['科幻', '悬疑']", "2010-09-01", "3541415", "21"),
        encoding="utf-8")
    return tmp_path / "douban"


def test_douban_domain_function(tmp_path):
    data_dir = _douban_dir(tmp_path)
    book = load_douban_domain("book", data_dir)
    assert book.name == "book"
    assert len(book.inter) == 4 and book.inter["user"].nunique() == 3 and book.inter["item"].nunique() == 3
    assert book.inter["rating"].tolist() == [5.0, 4.0, 3.0, 2.0]
    assert book.inter["timestamp"].iloc[0] == 1366329600.0  # 2013-04-19 UTC
    assert list(book.items.columns) == ["item", "title", "genres", "year", "description"]
    assert book.items.set_index("item")["title"].to_dict() == {"10": "活着", "11": "三体", "12": "围城"}
    movie = load_douban_domain("movie", data_dir)
    items = movie.items.set_index("item")
    assert items.loc["20", "title"] == "霸王别姬"
    assert items.loc["20", "genres"] == "剧情, 爱情, 同性"
    assert items.loc["20", "year"] == "1993"
    assert len(items.loc["20", "description"]) == 200
    assert items.loc["21", "genres"] == "科幻, 悬疑" and items.loc["21", "year"] == "2010"
    # the documented column mapping overrides the automatic choice
    book = load_douban_domain("book", data_dir, columns={"title": "author"})
    assert book.items.set_index("item").loc["10", "title"] == "余华"


def test_douban_recipe(tmp_path):
    data_dir = _douban_dir(tmp_path)
    recipe = DoubanRecipe({"data_dir": str(data_dir), "source": "book", "target": "Movie"})
    assert "no official download" in recipe.origin()
    raw = recipe.load(str(tmp_path))
    assert raw.align_users == "id" and raw.align_items is None
    assert (raw.source.name, raw.target.name) == ("book", "movie")
    assert len(raw.source.inter) == 4 and len(raw.target.inter) == 3
    assert set(raw.source.inter["user"]) & set(raw.target.inter["user"]) == {"u1", "u2"}
    assert raw.text_fields == {"title": "title", "genres": "genres", "year": "year", "description": "description"}
    assert (raw.source.items["genres"] == "").all()  # books_cleaned has no tag column


def test_douban_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="source: expected one of 'book', 'movie', 'music', got 'books'"):
        DoubanRecipe({"source": "books"})
    with pytest.raises(ConfigError, match="target: must differ from source"):
        DoubanRecipe({"source": "movie", "target": "movie"})
    with pytest.raises(DataError, match="field 'data_dir': Douban has no official download"):
        DoubanRecipe().load(str(tmp_path))


def test_douban_bad_input(tmp_path):
    data_dir = _douban_dir(tmp_path)
    folder = data_dir / "douban_dataset(text information)"
    with pytest.raises(DataError, match=r"musicreviews_cleaned\.txt: file not found .*no official download"):
        load_douban_domain("music", data_dir)
    reviews = folder / "moviereviews_cleaned.txt"
    reviews.write_text(REVIEW_HEADER.format(item="film_id") + _tsv_row("u1", "20", "5", "", "", "2016-01-01", "1"),
                       encoding="utf-8")
    with pytest.raises(DataError, match=r"moviereviews_cleaned\.txt, field 'movie_id': missing column"):
        load_douban_domain("movie", data_dir)
    reviews.write_text(REVIEW_HEADER.format(item="movie_id") + _tsv_row("u1", "20", "5", "", "", "2016-01-01", "1")
                       + _tsv_row("u2", "20", "great", "", "", "2016-01-01", "2"), encoding="utf-8")
    with pytest.raises(DataError, match=r"field 'rating': expected numbers, got 'great' \(row 2\)"):
        load_douban_domain("movie", data_dir)
    reviews.write_text(REVIEW_HEADER.format(item="movie_id") + _tsv_row("u1", "20", "5", "", "", "last week", "1"),
                       encoding="utf-8")
    with pytest.raises(DataError, match=r"field 'time': expected dates like 2013-04-19, got 'last week'"):
        load_douban_domain("movie", data_dir)
    reviews.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"moviereviews_cleaned\.txt: empty file"):
        load_douban_domain("movie", data_dir)
    reviews.write_text(REVIEW_HEADER.format(item="movie_id"), encoding="utf-8")
    with pytest.raises(DataError, match=r"moviereviews_cleaned\.txt: no interactions"):
        load_douban_domain("movie", data_dir)
    (folder / "books_cleaned.txt").write_text('"title"\t"book_id"\n' + _tsv_row("活着", "1"), encoding="utf-8")
    with pytest.raises(DataError, match=r"books_cleaned\.txt, field 'UID': missing column.*\['title', 'book_id'\]"):
        load_douban_domain("book", data_dir, columns={"item": ""})
    with pytest.raises(DataError, match=r"books_cleaned\.txt, field 'isbn': missing column"):
        load_douban_domain("book", data_dir, columns={"title": "isbn"})


def test_loaders_keep_numpy_float_dtypes(amazon_dir):
    domain = load_amazon_domain(amazon_dir / "Movies_and_TV_5.json", amazon_dir / "meta_Movies_and_TV.json", "M")
    assert domain.inter["rating"].dtype == np.float64 and domain.inter["timestamp"].dtype == np.float64


# ----------------------------------------------------------------------------- Amazon 2023 samples

def _review23(user, item, rating, ts_ms, asin=None, **extra):
    """A review line as the 2023 release writes it (timestamp in milliseconds)."""
    return {"rating": rating, "title": "Great", "text": "Loved it<br />really", "images": [],
            "asin": asin or item, "parent_asin": item, "user_id": user, "timestamp": ts_ms,
            "helpful_vote": 0, "verified_purchase": True, **extra}


BOOK_REVIEWS_23 = [
    _review23("AE1", "0000000001", 5.0, 1588615855070),
    _review23("AE1", "B0SHARED01", 4.0, 1588615856070, asin="B0SHARED01-V2"),  # a variant: keyed by parent
    _review23("AE2", "0000000001", 3.0, 1588615857070),
    _review23("AE3", "0000000002", 2.0, 1588615858070),
]
MOVIE_REVIEWS_23 = [
    _review23("AE1", "B000MOVIE1", 5.0, 1600000000000),
    _review23("AE2", "B0SHARED01", 4.0, 1600000001000),  # the same product, listed in both categories
    _review23("AE9", "B000MOVIE1", 1.0, 1600000002000),
]


def _meta23(item, **fields):
    record = {"main_category": "Books", "title": "", "average_rating": 4.5, "rating_number": 10,
              "features": [], "description": [], "price": None, "images": [], "videos": [], "store": None,
              "categories": [], "details": {}, "parent_asin": item, "bought_together": None}
    record.update(fields)
    return json.dumps(record)


BOOK_META_23 = [
    _meta23("0000000001", title="The Hobbit", store="J. R. R. Tolkien (Author)",
            features=["Illustrated edition", "Includes a map"], description=[LONG, "second part"],
            categories=["Books", "Literature &amp; Fiction", "Fantasy"],
            details={"Publisher": "Mariner (September 18, 2012)", "Language": "English"}),
    _meta23("B0SHARED01", title="Dune (Box set)", main_category="Movies & TV", categories=[],
            details={"Date First Available": "March 3, 2015"}, description=["Desert <b>planet</b>."]),
    "{this line is broken",
    _meta23("9999999999", title="Not reviewed"),
]
MOVIE_META_23 = [
    _meta23("B000MOVIE1", title="Alien", main_category="Movies & TV", categories=["Movies & TV", "Horror"],
            features=["Widescreen", "Director's cut"]),
    _meta23("B0SHARED01", title="Dune (Box set)", main_category="Movies & TV", categories=["Movies & TV", "Sci-Fi"]),
]


@pytest.fixture
def amazon23_dir(tmp_path) -> Path:
    folder = tmp_path / "amazon2023"
    folder.mkdir()
    _write(folder / "Books.jsonl.gz", _jsonl(BOOK_REVIEWS_23), gz=True)
    _write(folder / "meta_Books.jsonl.gz", _jsonl(BOOK_META_23), gz=True)
    _write(folder / "Movies_and_TV.jsonl", _jsonl(MOVIE_REVIEWS_23), gz=False)  # plain twins are accepted
    _write(folder / "meta_Movies_and_TV.jsonl", _jsonl(MOVIE_META_23), gz=False)
    return folder


def test_amazon2023_domain_function(amazon23_dir, caplog):
    with caplog.at_level(logging.WARNING):
        domain = load_amazon2023_domain(amazon23_dir / "Books.jsonl.gz", amazon23_dir / "meta_Books.jsonl.gz",
                                        "Books")
    assert domain.name == "Books"
    assert list(domain.inter.columns) == ["user", "item", "rating", "timestamp"]
    assert len(domain.inter) == 4 and domain.inter["user"].nunique() == 3
    assert domain.inter["item"].tolist() == ["0000000001", "B0SHARED01", "0000000001", "0000000002"]
    assert domain.inter["timestamp"].iloc[0] == pytest.approx(1588615855.070)  # milliseconds -> seconds
    assert domain.inter["rating"].dtype == np.float64
    assert list(domain.items.columns) == list(amazon2023.ITEM_COLUMNS)
    items = domain.items.set_index("item")
    assert sorted(items.index) == ["0000000001", "B0SHARED01"]  # not-reviewed dropped, 0002 has no metadata
    hobbit = items.loc["0000000001"]
    assert hobbit["title"] == "The Hobbit"
    assert hobbit["categories"] == "Books, Literature & Fiction, Fantasy" == hobbit["genres"]
    assert hobbit["features"] == "Illustrated edition; Includes a map"
    assert hobbit["description"].startswith("A very long description.")
    assert len(hobbit["description"]) <= amazon2023.DESCRIPTION_CHARS
    assert hobbit["year"] == "2012" and hobbit["store"] == "J. R. R. Tolkien (Author)"
    dune = items.loc["B0SHARED01"]
    assert dune["categories"] == "" and dune["genres"] == "Movies & TV"  # no path: the main category
    assert dune["year"] == "2015" and dune["description"] == "Desert planet ." and dune["features"] == ""
    assert "skipped 1 of 4 metadata lines" in caplog.text


def test_amazon2023_recipe(amazon23_dir):
    recipe = Amazon2023Recipe({"data_dir": str(amazon23_dir), "source": "books", "target": "movies_and_tv"})
    assert (recipe.params["source"], recipe.params["target"]) == ("Books", "Movies_and_TV")
    assert "Books.jsonl.gz" in recipe.origin() and "meta_Movies_and_TV.jsonl.gz" in recipe.origin()
    raw = check_dataset(Amazon2023Recipe, {"data_dir": str(amazon23_dir)})  # the engine's contract
    assert (raw.source.name, raw.target.name) == ("Books", "Movies_and_TV")
    assert len(raw.source.inter) == 4 and len(raw.target.inter) == 3
    assert raw.align_users == "id"
    assert set(raw.source.inter["user"]) & set(raw.target.inter["user"]) == {"AE1", "AE2"}
    assert raw.align_items == "id" and "1 shared products" in raw.description  # auto: they share B0SHARED01
    for field in raw.text_fields.values():
        assert field in raw.source.items.columns and field in raw.target.items.columns
    alien = raw.target.items.set_index("item").loc["B000MOVIE1"]
    assert alien["genres"] == "Movies & TV, Horror" and alien["features"] == "Widescreen; Director's cut"
    # the default template renders from the default mapping; features/description are there for others
    from xdplug.config import DEFAULTS
    from xdplug.data.text import check_template_fields, render_texts

    template = DEFAULTS["dataset"]["text_template"]
    check_template_fields(template, [raw.source.items, raw.target.items], raw.text_fields)
    texts, fallback = render_texts(raw.source.items, template, raw.text_fields)
    assert texts["0000000001"] == "The Hobbit (2012). Genres: Books, Literature & Fiction, Fantasy."
    assert fallback == 0
    texts, _ = render_texts(raw.target.items, "{title}. {features}. {description}", raw.text_fields)
    assert texts["B000MOVIE1"] == "Alien. Widescreen; Director's cut."
    none = Amazon2023Recipe({"data_dir": str(amazon23_dir), "align_items": "none"}).load(str(amazon23_dir))
    assert none.align_items is None


def test_amazon2023_no_shared_products(amazon23_dir):
    reviews = [r for r in MOVIE_REVIEWS_23 if r["parent_asin"] != "B0SHARED01"]
    _write(amazon23_dir / "Movies_and_TV.jsonl", _jsonl(reviews), gz=False)
    raw = Amazon2023Recipe({"data_dir": str(amazon23_dir)}).load(str(amazon23_dir))
    assert raw.align_items is None and raw.align_users == "id"


def test_amazon2023_config_errors():
    with pytest.raises(ConfigError, match="unknown Amazon 2023 category 'Bookz'. Did you mean 'Books'"):
        Amazon2023Recipe({"source": "Bookz"})
    with pytest.raises(ConfigError, match="target: must differ from source"):
        Amazon2023Recipe({"source": "Books", "target": "BOOKS"})
    with pytest.raises(ConfigError, match="align_items: expected one of 'auto', 'id', 'none'"):
        Amazon2023Recipe({"align_items": "title"})
    with pytest.raises(ConfigError, match="download: expected true or false"):
        Amazon2023Recipe({"download": "yes"})
    assert Amazon2023Recipe({"source": "Baby_Products", "target": "unknown"}).params["target"] == "Unknown"


def test_amazon2023_missing_file_offline(tmp_path):
    with pytest.raises(DataError, match=r"Books\.jsonl\.gz: file not found in .*download: true") as info:
        Amazon2023Recipe({"data_dir": str(tmp_path)}).load(str(tmp_path))
    assert amazon2023.MIRRORS[0] + "review_categories/Books.jsonl.gz" in str(info.value)
    assert amazon2023.MIRRORS[0].startswith("https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/")


def test_amazon2023_bad_files(tmp_path):
    meta = _write(tmp_path / "meta.jsonl", _jsonl(BOOK_META_23), gz=False)
    old_layout = _write(tmp_path / "Books.jsonl", _jsonl(BOOK_REVIEWS), gz=False)  # a 2018 file by mistake
    with pytest.raises(DataError, match=r"Books\.jsonl, field 'user_id': missing field.*Amazon Reviews 2023"):
        load_amazon2023_domain(old_layout, meta, "Books")
    bad = _write(tmp_path / "Books.jsonl", _jsonl([_review23("A", "1", 5.0, 1), _review23("B", "2", 4.0, "now")]),
                 gz=False)
    with pytest.raises(DataError, match=r"field 'timestamp': expected numbers, got 'now' \(row 2\)"):
        load_amazon2023_domain(bad, meta, "Books")
    reviews = _write(tmp_path / "Books.jsonl", _jsonl(BOOK_REVIEWS_23), gz=False)
    old_meta = _write(tmp_path / "meta_old.jsonl", _jsonl(BOOK_META_LINES[:1]), gz=False)
    with pytest.raises(DataError, match=r"meta_old\.jsonl, field 'parent_asin': no line is a JSON object"):
        load_amazon2023_domain(reviews, old_meta, "Books")
    truncated = tmp_path / "meta_cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(_jsonl(BOOK_META_23))[:-30])
    with pytest.raises(DataError, match="corrupt or truncated.*amazon-reviews-2023"):
        load_amazon2023_domain(reviews, truncated, "Books")


def test_amazon2023_download(tmp_path, monkeypatch):
    """The real download code path (urllib, temporary file, rename), with the network faked."""
    served = {
        "review_categories/Books.jsonl.gz": gzip.compress(_jsonl(BOOK_REVIEWS_23)),
        "meta_categories/meta_Books.jsonl.gz": gzip.compress(_jsonl(BOOK_META_23)),
        "review_categories/Movies_and_TV.jsonl.gz": gzip.compress(_jsonl(MOVIE_REVIEWS_23)),
        "meta_categories/meta_Movies_and_TV.jsonl.gz": gzip.compress(_jsonl(MOVIE_META_23)),
    }
    urls = []

    def fake_urlopen(request, timeout=None):
        url = request.full_url
        urls.append(url)
        for base in (amazon2023.MIRRORS[1], "https://example.org/amazon_2023/raw/"):
            if url.startswith(base):
                return _FakeResponse(served[url[len(base):]])
        raise urllib.error.URLError("unreachable")  # the first mirror is down

    monkeypatch.setattr(amazon.urllib.request, "urlopen", fake_urlopen)
    raw = Amazon2023Recipe({"download": True}).load(str(tmp_path))
    assert len(raw.source.inter) == 4 and len(raw.target.inter) == 3
    folder = amazon.downloads_dir() / "amazon2023"
    assert sorted(p.name for p in folder.iterdir()) == sorted(k.split("/")[1] for k in served)  # no .part left
    assert amazon2023.MIRRORS[0] + "review_categories/Books.jsonl.gz" in urls
    assert amazon2023.MIRRORS[1] + "meta_categories/meta_Movies_and_TV.jsonl.gz" in urls
    urls.clear()
    Amazon2023Recipe({"download": True}).load(str(tmp_path))  # found: nothing downloaded again
    assert urls == []
    # a configured mirror replaces the built-in ones
    for path in folder.iterdir():
        path.unlink()
    recipe = Amazon2023Recipe({"download": True, "mirror": "https://example.org/amazon_2023/raw"})
    assert "example.org" in recipe.origin()
    recipe.load(str(tmp_path))
    assert urls and all(u.startswith("https://example.org/amazon_2023/raw/") for u in urls)


# ----------------------------------------------------------------------------- as the engine sees them

def test_recipes_registered_with_declared_options():
    from xdplug.components import declared_options
    from xdplug.plugins import make_plugin_manager

    registry = make_plugin_manager().registry
    for name, cls in (("amazon", AmazonRecipe), ("amazon2023", Amazon2023Recipe), ("douban", DoubanRecipe)):
        assert registry.get("dataset", name) is cls
        options = declared_options(cls)
        assert options["source"].choices and options["target"].choices
        assert all(option.help for option in options.values()), name
        cls({}).origin()  # `xdplug datasets` builds each recipe with its defaults


def test_amazon_and_douban_contracts(amazon_dir, tmp_path):
    raw = check_dataset(AmazonRecipe, {"data_dir": str(amazon_dir)})
    assert raw.align_users == "id"
    raw = check_dataset(DoubanRecipe, {"data_dir": str(_douban_dir(tmp_path))})
    assert raw.align_users == "id"
