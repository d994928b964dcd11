"""``xdplug update`` says which new users and items are new to the data and which the filters dropped."""

import pandas as pd

from xdplug.artifact.export import dropped_ids
from xdplug.artifact.update import explain_new, origin_of_new, prepared_item_key
from xdplug.data.raw import RawDomain, RawDomains

PROTOCOL = {"min_rating": 3, "min_user_inter": 5, "min_item_inter": 5}


def test_origin_and_explanation():
    dropped = {"below_min_rating": ["m9"], "too_few_interactions": ["m4", "m5", "m6", "m7"]}
    origin = origin_of_new(["m4", "m5", "m6", "m7", "m9", "m61", "m62", "m63"], dropped)
    assert origin == {"new": 3, "below_min_rating": 1, "too_few_interactions": 4}
    assert explain_new("items", 8, origin, PROTOCOL) == (
        "8 new items: 3 new to the data the artifact was trained on; 5 in that data but dropped by the "
        "preparation (4 with fewer than 5 positive interactions, 1 rated only below 3)")
    users = origin_of_new(["v1", "v2"], {"below_min_rating": [], "too_few_interactions": ["v1", "v2"]})
    assert explain_new("users", 2, users, PROTOCOL) == (
        "2 new users: 2 in the data the artifact was trained on but dropped by the preparation (2 with fewer "
        "than 5 positive interactions)")
    # artifacts exported before the dropped IDs were recorded
    assert origin_of_new(["m1"], None) is None
    assert explain_new("items", 1, None, PROTOCOL) == (
        "1 new items (new to the data, or dropped by the preparation's filters)")
    assert explain_new("items", 0, None, PROTOCOL) == "0 new items"


def test_dropped_ids_by_reason():
    class Data:
        keys = {"target_users": ["t:u1"], "target_items": ["t:a"]}

    inter = pd.DataFrame({"user": ["u1", "u1", "u2", "u3"], "item": ["a", "b", "a", "c"],
                          "rating": [5.0, 4.0, 5.0, 1.0], "timestamp": [0.0] * 4})
    empty = pd.DataFrame({"item": pd.Series([], dtype=str)})
    target = RawDomain("t", inter, empty, "t.csv")
    raw = RawDomains(source=RawDomain("s", inter.iloc[:0], empty, "s.csv"), target=target)
    out = dropped_ids(raw, PROTOCOL, Data(), None, None)
    assert out == {"users": {"below_min_rating": ["u3"], "too_few_interactions": ["u2"]},
                   "items": {"below_min_rating": ["c"], "too_few_interactions": ["b"]}}
    # atomic files (the genre recipes) can hold the rating column as text
    text = RawDomain("t", inter.assign(rating=["5", "4", "5", "1"]), empty, "t.inter")
    assert dropped_ids(RawDomains(source=raw.source, target=text), PROTOCOL, Data(), None, None) == out


def test_prepared_item_key_of_a_combined_key():
    align = {"items": "key", "item_key": "title+Release Year"}
    assert prepared_item_key("m1", align, {"title": "Matrix, The", "Release Year": "1999"}) == "k:the matrix 1999"
    assert prepared_item_key("m1", align, {"title": "The Matrix", "Release Year": "nan"}) == "t:m1"
    assert prepared_item_key("m1", {"items": "key", "item_key": "title"}, {"title": "Amélie"}) == "k:amelie"
    assert prepared_item_key("m1", {"items": "id"}, {}) == "m1"
