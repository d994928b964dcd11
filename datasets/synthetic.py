"""``synthetic-scale``: generated cross-domain data of any size, for scale benchmarks.

What it is for: measuring how the phases of a run (prepare, encode, fit, evaluate) grow
with the data, up to a real shop's 10^5 items and 10^7 interactions, offline and in a
few seconds of generation (``bench/bench_scale.py``, ``configs/scale.yaml``). Its numbers
are not accuracy claims: the data are drawn from the model below, so which method wins
on it says how well a method fits that model, not how it does on real data.

The generative model (all vectorised numpy, deterministic for ``seed``):

* ``topics`` latent topics; each item belongs to one topic (uniformly at random) and has
  a popularity from a power law over a random ranking of its domain's catalogue,
  ``(rank + 10) ** -popularity_exponent``;
* each person has a taste, a Dirichlet(``taste_concentration``) mix over the topics;
  a small concentration gives focused tastes;
* each user's activity is log-normal (sigma 1) around ``activity`` interactions, at
  least ``min_activity`` and at most half the catalogue, rescaled so the domain has
  about ``interactions`` of them;
* an interaction draws a topic from the user's taste (or, with probability ``noise``,
  ignores the taste) and then an item by popularity within the topic; a user never
  gets an item twice (draws are repeated for the users left short, the last rounds by
  popularity alone);
* timestamps increase along each user's history; ratings are absent (implicit
  feedback: every interaction is a positive);
* item texts come from topic vocabularies, so text carries the topic and transfers
  across domains: ``title`` ("Wool hiking jacket, model 4c21"), ``genres`` (the
  topic's two theme words), ``brand`` (each brand sells one topic) and ``year``.
  Every title is distinct (the model code is the item's number).

Two domains: the **target** (a shop: jackets, lamps, mugs ...) and the **source** (a
bookshop: guides, novels, atlases ...), the source ``source_size`` times the target in
users, items and interactions. ``overlap`` says what they share: ``users`` (a fraction
``user_overlap`` of the smaller domain's users are the same people, with the same
taste), ``items`` (a fraction ``item_overlap`` of the smaller catalogue, same ID and
text), ``both`` or ``none`` (only the topic words in the texts link them). ``scale``
multiplies every size, so a config written for 10^7 interactions runs tiny with
``--set dataset.params.scale=0.001``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xdplug.api import Choice, ConfigError, DatasetRecipe, Float, Int, RawDomain, RawDomains

#: theme words of the topics: topic k is named by two of them (its ``genres`` field)
THEMES = (
    "hiking", "winter", "garden", "kitchen", "jazz", "travel", "yoga", "baking", "fishing", "camping",
    "cycling", "coffee", "vintage", "kids", "office", "gaming", "photography", "running", "beach", "skiing",
    "wellness", "retro", "rustic", "urban", "nautical", "tropical", "alpine", "desert", "forest", "cosmic",
    "classic", "festive", "wedding", "pets", "crafts", "music", "science", "history", "poetry", "mystery",
    "romance", "fantasy", "horror", "comedy", "sports", "fitness", "wine", "tea", "chess", "robotics",
    "astronomy", "ocean", "mountain", "safari", "arctic", "jungle", "farm", "city", "royal", "pirate",
    "space", "folk", "opera", "surfing",
)
MATERIALS = ("Wool", "Leather", "Cotton", "Bamboo", "Steel", "Linen", "Ceramic", "Oak", "Glass", "Copper",
             "Silk", "Canvas", "Walnut", "Marble", "Velvet", "Denim")
#: what each domain sells: the target a general shop, the source a bookshop
NOUNS = {
    "target": ("jacket", "boots", "tent", "mug", "lamp", "backpack", "blanket", "poster", "watch", "scarf",
               "speaker", "kettle", "chair", "hat", "bottle", "rug"),
    "source": ("guide", "novel", "handbook", "album", "magazine", "atlas", "cookbook", "memoir", "anthology",
               "journal", "almanac", "picture book"),
}
SYLLABLES = ("nor", "vik", "sol", "tek", "mar", "lun", "bra", "kor", "zen", "fal", "rio", "dax", "mel", "tor",
             "qui", "sak")
#: brands per topic (each brand sells one topic)
BRANDS_PER_TOPIC = 4
#: popularity of the item at rank r (0 = most popular): (r + POP_OFFSET) ** -exponent
POP_OFFSET = 10.0
#: draws per interaction still wanted, so few users are left short after removing repeats
OVERSAMPLE = 1.3
#: rounds of drawing for users still short of their activity; the last ones ignore tastes (a user
#: whose topics hold too few items fills up with popular items, as a real shopper would)
ROUNDS, TASTE_ROUNDS = 6, 3
#: draws handled at once (bounds the temporary arrays of one round)
CHUNK = 1 << 18
#: fewest interactions / items a domain may be generated with
MIN_INTERACTIONS, MIN_ITEMS = 100, 10


def _count(value: float) -> int:
    return int(round(value))


def domain_sizes(p: dict, path: str) -> dict:
    """Users, items and interactions of each domain and how many users/items they share, checked."""
    scale = p["scale"]
    sizes = {"target": {"interactions": _count(p["interactions"] * scale), "items": _count(p["items"] * scale)}}
    t = sizes["target"]
    if t["interactions"] < MIN_INTERACTIONS:
        raise ConfigError(f"{path}.scale", f"interactions x scale = {t['interactions']}; expected at least "
                                           f"{MIN_INTERACTIONS} (raise scale or interactions)")
    if t["items"] < MIN_ITEMS:
        raise ConfigError(f"{path}.scale", f"items x scale = {t['items']}; expected at least {MIN_ITEMS} "
                                           "(raise scale or items)")
    t["users"] = _count(p["users"] * scale) if p["users"] else max(1, _count(t["interactions"] / p["activity"]))
    ratio = p["source_size"]
    sizes["source"] = {k: max(low, _count(v * ratio)) for (k, v), low in
                       zip(t.items(), (MIN_INTERACTIONS, MIN_ITEMS, 1))}
    for role, s in sizes.items():
        if p["min_activity"] > s["items"] // 2:
            raise ConfigError(f"{path}.min_activity", f"{p['min_activity']} is more than half the {role} domain's "
                                                      f"{s['items']} items; expected a smaller min_activity or more items")
        if not p["users"] and p["min_activity"] > p["activity"]:
            raise ConfigError(f"{path}.min_activity", f"{p['min_activity']} is above activity {p['activity']:g}, "
                                                      "the mean; expected at most the mean")
        if s["users"] * p["min_activity"] > s["interactions"]:
            raise ConfigError(f"{path}.users", f"the {role} domain's {s['users']} users x min_activity "
                                               f"{p['min_activity']} exceed its {s['interactions']} interactions; "
                                               "expected fewer users or a smaller min_activity")
        if s["interactions"] > s["users"] * (s["items"] // 2):
            raise ConfigError(f"{path}.interactions", f"the {role} domain's {s['interactions']} interactions need "
                                                      f"more than half of every user's catalogue ({s['users']} users x "
                                                      f"{s['items']} items); expected fewer interactions or more "
                                                      "users or items")
    share_users = p["overlap"] in ("users", "both")
    share_items = p["overlap"] in ("items", "both")
    sizes["shared_users"] = _count(p["user_overlap"] * min(t["users"], sizes["source"]["users"])) if share_users else 0
    sizes["shared_items"] = _count(p["item_overlap"] * min(t["items"], sizes["source"]["items"])) if share_items else 0
    if share_users and not sizes["shared_users"]:
        raise ConfigError(f"{path}.user_overlap", f"overlap {p['overlap']!r} but user_overlap "
                                                  f"{p['user_overlap']} shares no user; expected a larger fraction")
    if share_items and not sizes["shared_items"]:
        raise ConfigError(f"{path}.item_overlap", f"overlap {p['overlap']!r} but item_overlap "
                                                  f"{p['item_overlap']} shares no item; expected a larger fraction")
    return sizes


def _tastes(rng: np.random.Generator, n_people: int, topics: int, concentration: float) -> np.ndarray:
    """Every person's cumulative topic mix, Dirichlet via normalised gammas, as one increasing float64
    array: person ``q``'s row is ``q + cumsum(mix)``, so a topic draw is one ``searchsorted``."""
    flat = np.empty(n_people * topics, dtype=np.float64)
    step = 1 << 16
    for start in range(0, n_people, step):
        stop = min(start + step, n_people)
        g = rng.standard_gamma(concentration, size=(stop - start, topics))
        g[:, 0] += 1e-12  # a row of gammas that all underflow to 0 becomes topic 0
        np.cumsum(g / g.sum(axis=1, keepdims=True), axis=1, out=g)
        g[:, -1] = 1.0
        g += np.arange(start, stop, dtype=np.float64)[:, None]
        flat[start * topics:stop * topics] = g.ravel()
    return flat


def draw_topics(flat: np.ndarray, topics: int, person: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """A topic for each draw of ``person`` from their mix (``pick`` uniform in [0, 1))."""
    index = np.searchsorted(flat, person + pick, side="right")
    return np.clip(index - person * topics, 0, topics - 1)


class _Catalogue:
    """One domain's items for drawing: within-topic popularity as one cumulative array."""

    def __init__(self, items: np.ndarray, topic_of: np.ndarray, topics: int, exponent: float,
                 rng: np.random.Generator):
        self.items = items  # global item indices of the domain
        rank = rng.permutation(len(items)).astype(np.float64)
        weight = (rank + POP_OFFSET) ** -exponent
        topic = topic_of[items]
        self.order = np.argsort(topic, kind="stable")  # local indices, grouped by topic
        self.cum = np.cumsum(weight[self.order])
        self.total = float(self.cum[-1])
        starts = np.searchsorted(topic[self.order], np.arange(topics))
        bounds = np.append(starts, len(items))
        before = np.concatenate([[0.0], self.cum])
        self.before = before[bounds[:-1]]
        self.mass = before[bounds[1:]] - self.before

    def draw(self, topic: np.ndarray, uniform: np.ndarray, free: np.ndarray) -> np.ndarray:
        """Local item indices: by popularity within ``topic``, or over the whole catalogue where
        ``free`` (no taste) or the topic has no item in this domain."""
        mass = self.mass[topic]
        anywhere = free | (mass <= 0)
        value = np.where(anywhere, uniform * self.total, self.before[topic] + uniform * mass)
        pos = np.minimum(np.searchsorted(self.cum, value, side="right"), len(self.cum) - 1)
        return self.order[pos]


def _activity(rng: np.random.Generator, n_users: int, wanted: int, low: int, high: int) -> np.ndarray:
    """Log-normal (sigma 1) interactions per user summing to about ``wanted``, within [low, high]."""
    raw = rng.lognormal(0.0, 1.0, n_users)
    factor = wanted / raw.sum()
    for _ in range(5):  # the bounds move the total; adjust the scale towards the wanted total
        counts = np.clip(np.round(raw * factor), low, max(low, high)).astype(np.int64)
        factor *= wanted / max(1, counts.sum())
    return counts


def sample_interactions(rng: np.random.Generator, people: np.ndarray, counts: np.ndarray, tastes: np.ndarray,
                        catalogue: _Catalogue, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(local user, local item, rank in the user's history) of each interaction; no user gets an item twice.

    Rows are grouped by user, in the order drawn. Users whose tastes cannot supply ``counts``
    distinct items in ``TASTE_ROUNDS`` rounds fill up by popularity alone.
    """
    n_items, topics = len(catalogue.items), len(catalogue.mass)
    kept = np.zeros(0, dtype=np.int64)  # codes user * n_items + item, grouped by user, in draw order
    need = counts.copy()
    for round_ in range(ROUNDS):
        if not need.any():
            break
        per_user = np.where(need > 0, np.ceil(need * OVERSAMPLE).astype(np.int64) + 1, 0)
        users = np.repeat(np.arange(len(counts), dtype=np.int64), per_user)
        codes = np.empty(len(users), dtype=np.int64)
        for start in range(0, len(users), CHUNK):
            u = users[start:start + CHUNK]
            topic = draw_topics(tastes, topics, people[u], rng.random(len(u)))
            free = rng.random(len(u)) < (noise if round_ < TASTE_ROUNDS else 1.0)
            codes[start:start + len(u)] = u * n_items + catalogue.draw(topic, rng.random(len(u)), free)
        del users
        merged = np.concatenate([kept, codes])
        unique, first = np.unique(merged, return_index=True)  # earlier draws (and kept rows) come first
        del merged, codes
        owner = unique // n_items
        order = np.lexsort((first, owner))
        unique, owner = unique[order], owner[order]
        have = np.bincount(owner, minlength=len(counts))
        rank = np.arange(len(unique)) - (np.cumsum(have) - have)[owner]
        keep = rank < counts[owner]
        kept = unique[keep]
        need = counts - np.bincount(owner[keep], minlength=len(counts))
    owner = kept // n_items
    have = np.bincount(owner, minlength=len(counts))
    rank = np.arange(len(kept)) - (np.cumsum(have) - have)[owner]
    return owner, kept % n_items, rank


def _names(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in range(n)], dtype=object)


def item_table(items: np.ndarray, names: np.ndarray, topic_of: np.ndarray, domain_of: np.ndarray, rng_seed: int,
               topics: int) -> pd.DataFrame:
    """Titles, genres, brand and year of ``items`` (global indices); the same item always reads the same."""
    rng = np.random.default_rng([rng_seed, 1])
    n_all = len(topic_of)
    material = rng.integers(0, len(MATERIALS), n_all)[items]
    noun_pick = rng.integers(0, 1 << 30, n_all)[items]
    brand_pick = rng.integers(0, BRANDS_PER_TOPIC, n_all)[items]
    year = 2000 + rng.integers(0, 25, n_all)[items]
    keyword_pick = rng.integers(0, 3, n_all)[items]
    topic = topic_of[items]
    words = [_topic_words(k) for k in range(topics)]
    brands = [_brand(k * BRANDS_PER_TOPIC + b) for k in range(topics) for b in range(BRANDS_PER_TOPIC)]
    titles, genres, brand_names = [], [], []
    for i, t, m, n, b, w, d in zip(items.tolist(), topic.tolist(), material.tolist(), noun_pick.tolist(),
                                   brand_pick.tolist(), keyword_pick.tolist(), domain_of[items].tolist()):
        nouns = NOUNS[d]
        titles.append(f"{MATERIALS[m]} {words[t][w]} {nouns[n % len(nouns)]}, model {i:x}")
        genres.append(f"{words[t][0]}, {words[t][1]}")
        brand_names.append(brands[t * BRANDS_PER_TOPIC + b])
    return pd.DataFrame({"item": names[items],
                         "title": titles, "genres": genres, "brand": brand_names, "year": year.astype(str)})


def _topic_words(k: int) -> tuple[str, str, str]:
    """Topic ``k``'s theme words: two names (its genres) and a third word its titles also use."""
    n = len(THEMES)
    first = THEMES[k % n]
    second = THEMES[(k // n + 7 * k + 1) % n]
    if second == first:
        second = THEMES[(k + 1) % n]
    third = THEMES[(5 * k + 3 + k // n) % n]
    return first, second, third


def _brand(b: int) -> str:
    n = len(SYLLABLES)
    name = SYLLABLES[b % n] + SYLLABLES[(b // n) % n] + (SYLLABLES[(b // n // n) % n] if b >= n * n else "")
    return name.capitalize()


def generate(p: dict, path: str = "dataset.params") -> RawDomains:
    """The two domains of ``p`` (the recipe's resolved params)."""
    sizes = domain_sizes(p, path)
    t, s = sizes["target"], sizes["source"]
    rng = np.random.default_rng([p["seed"], 0])
    # people: target users first; the last shared_users of them are also the first source users
    first_source_person = t["users"] - sizes["shared_users"]
    people = {"target": np.arange(t["users"], dtype=np.int64),
              "source": first_source_person + np.arange(s["users"], dtype=np.int64)}
    n_people = first_source_person + s["users"]
    first_source_item = t["items"] - sizes["shared_items"]
    items = {"target": np.arange(t["items"], dtype=np.int64),
             "source": first_source_item + np.arange(s["items"], dtype=np.int64)}
    n_items = first_source_item + s["items"]
    topic_of = rng.integers(0, p["topics"], n_items)
    domain_of = np.where(np.arange(n_items) < t["items"], "target", "source").astype(object)
    tastes = _tastes(rng, n_people, p["topics"], p["taste_concentration"])
    person_names = _names("u", n_people)
    item_names = _names("i", n_items)
    domains = {}
    for role, size in (("target", t), ("source", s)):
        catalogue = _Catalogue(items[role], topic_of, p["topics"], p["popularity_exponent"], rng)
        counts = _activity(rng, size["users"], size["interactions"], p["min_activity"], size["items"] // 2)
        user, item, rank = sample_interactions(rng, people[role], counts, tastes, catalogue, p["noise"])
        start = 1.6e9 + rng.uniform(0, 3.0e7, size["users"])
        gap = rng.uniform(600, 3 * 86400, size["users"])
        inter = pd.DataFrame({"user": person_names[people[role][user]], "item": item_names[items[role][item]],
                              "rating": np.full(len(user), np.nan),
                              "timestamp": np.floor(start[user] + rank * gap[user])})
        name = f"synthetic-{'shop' if role == 'target' else 'books'}"
        domains[role] = RawDomain(name, inter, item_table(items[role], item_names, topic_of, domain_of, p["seed"], p["topics"]),
                                  f"synthetic-scale {role} (generated, seed {p['seed']})")
    return RawDomains(
        source=domains["source"], target=domains["target"],
        align_users="id" if sizes["shared_users"] else None,
        align_items="id" if sizes["shared_items"] else None,
        text_fields={"title": "title", "genres": "genres", "brand": "brand", "year": "year"},
        description=(f"synthetic-scale: {t['interactions']:,} target interactions over {t['items']:,} items and "
                     f"{t['users']:,} users, source x{p['source_size']:g}; {p['topics']} topics; shares "
                     f"{sizes['shared_users']:,} users and {sizes['shared_items']:,} items"),
    )


class SyntheticScaleRecipe(DatasetRecipe):
    name = "synthetic-scale"
    description = ("Generated shop (target) and bookshop (source) of any size, power-law popularity, topic tastes "
                   "and texts; offline, for scale benchmarks (not accuracy claims)")
    defaults = {
        "interactions": Int(100_000, 1, 10**10, help="target interactions (before the protocol's filtering)"),
        "items": Int(10_000, 1, 10**9, help="target catalogue size"),
        "users": Int(0, 0, 10**9, help="target users; 0: interactions / activity"),
        "activity": Float(20.0, 1.0, 10**6, help="mean interactions per user"),
        "min_activity": Int(5, 1, 10**6, help="fewest interactions of a user"),
        "scale": Float(1.0, 0.0, 10**6, low_open=True, help="multiplies interactions, items and users"),
        "source_size": Float(1.0, 0.0, 1000.0, low_open=True, help="source users, items and interactions / the target's"),
        "overlap": Choice("users", ["users", "items", "both", "none"]),
        "user_overlap": Float(0.5, 0.0, 1.0, help="shared fraction of the smaller domain's users"),
        "item_overlap": Float(0.2, 0.0, 1.0, help="shared fraction of the smaller domain's items"),
        "topics": Int(50, 1, 100_000, help="latent topics"),
        "taste_concentration": Float(0.1, 0.0, 1000.0, low_open=True, help="Dirichlet concentration of a taste"),
        "popularity_exponent": Float(1.0, 0.0, 5.0, help="power-law exponent of item popularity"),
        "noise": Float(0.2, 0.0, 1.0, help="share of interactions drawn by popularity alone"),
        "seed": Int(0, 0, 2**32 - 1),
    }

    def __init__(self, params: dict | None = None, path: str | None = None):
        super().__init__(params, path)
        self._path = path or "dataset.params"
        domain_sizes(self.params, self._path)  # a size that cannot be generated fails now, not at load

    def origin(self) -> str:
        return "generated in memory (seeded; offline, no download)"

    def load(self, cache_dir: str) -> RawDomains:
        return generate(self.params, self._path)
