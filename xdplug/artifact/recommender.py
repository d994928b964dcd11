"""A loaded artifact: :func:`load_artifact` checks and rebuilds a method, :class:`Recommender` serves it.

The model is rebuilt from the spec (strategies: :func:`~xdplug.model.strategy.build_model`,
the construction path of training, without training; a closed-form strategy is fitted
again on the stored data; baselines as their class declares with ``export``: ``"state"``
rebuilds through ``restore``, ``"refit"`` fits again) and the weights are loaded into it.
A known user is represented as in the benchmark: by the training interactions of the
run (plus those added by updates); all of the user's known interactions count as seen.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from ..config import SCHEMA, _check, check_pooling, validate
from ..context import FitContext
from ..data.text import normalise_key
from ..errors import ArtifactError, ConfigError, NotApplicableError, UnknownComponentError, XdplugError
from ..model.strategy import build_strategy, fit_strategy
from ..spec import family_class, resolve_strategy
from ..model.text_table import TextTable
from ..plugins import installed_registry
from ..recbole.compat import quiet_recbole_logging
from ..weights import load_state, rng_kept, seeded
from .format import _load_data, _read_json, _torch_load, check_ids, verify_artifact

#: the seeds a config accepts (``seeds``); the model is rebuilt under the stored one
MAX_SEED = 2**32 - 1


def build_strategy_model(entry: dict, registry, data, device, seed: int, *, text_module=None, rb=None,
                         user_rows=None, n_union_users=None, path: str = "strategy"):
    """The model of a strategy spec, built by its family (``ModelFamily.build``; the embedding family's is
    :func:`~xdplug.model.strategy.build_model`, the one place the transfer model is constructed) under
    ``seed``, not trained. Returns ``(model, encoder, options)``."""
    strategy = resolve_strategy(entry, registry, path)
    device = torch.device(device)
    restore = {"text_module": text_module, "user_rows": user_rows, "n_union_users": n_union_users}
    if rb is not None:
        restore["rb"] = rb
    with seeded(seed):
        model = strategy.family.build(strategy, data, device, seed, **restore)
    return model, strategy.encoder, strategy.options


def _text_module_from_state(state: dict, encoder, data, device):
    """A frozen text table comes back from the weights alone; other text encoders are rebuilt."""
    text_keys = [k for k in state if k.startswith("text_encoder.")]
    if text_keys == ["text_encoder.table"]:
        return TextTable(torch.zeros_like(state["text_encoder.table"], device=device))
    if not text_keys:
        return None
    return encoder.build(data.catalog, torch.device(device))


def fit_context(data, seed, device, config, workdir, progress=None, *, registry) -> FitContext:
    """The context a stored method is rebuilt (or fine-tuned) in."""
    return FitContext(data=data, seed=seed, device=torch.device(device), train=config["train"],
                      evaluation=config["evaluation"], workdir=Path(workdir), progress=progress, registry=registry)


class Recommender:
    """A loaded artifact: recommendations for known target users and for new users' histories.

    ``recommend(user=..., k=10)`` or ``recommend(history=[item, ...], k=10)``
    returns a list of ``{"item", "score", "text"}``, best first, items the user
    has seen left out unless ``exclude_seen=False``.
    """

    def __init__(self, path: Path, meta: dict, data, ids: dict, device, model=None, scorer=None,
                 extras: dict | None = None, arrays: dict | None = None):
        self.path, self.meta, self.data, self.ids = path, meta, data, ids
        self.arrays = arrays or {}
        self.device = torch.device(device)
        self.kind, self.method = meta["kind"], meta["method"]
        self.model, self.scorer = model, scorer
        self.extras = extras or {}
        self.users: list[str] = list(ids["users"])
        self.items: list[str] = list(ids["items"])
        self._user_of = {u: i for i, u in enumerate(self.users)}
        for i, key in enumerate(data.keys["target_users"]):
            self._user_of.setdefault(key, i)
        self._item_of = {it: i for i, it in enumerate(self.items)}
        for i, key in enumerate(data.keys["target_items"]):
            self._item_of.setdefault(key, i)
        target_keys = set(data.keys["target_users"])
        self._source_user_of = {key: i for i, key in enumerate(data.keys.get("source_users") or [])
                                if key not in target_keys and key not in self._user_of}
        self._row_of = {k: r for r, k in enumerate(data.keys["catalog"])}
        self._target_of_row = {int(r): i for i, r in enumerate(data.catalog.target_rows)}
        self.texts = [data.catalog.texts[r] for r in data.catalog.target_rows]
        seen = np.concatenate([data.target_train, data.target_valid, data.target_test]).reshape(-1, 2)
        m = sp.csr_matrix((np.ones(len(seen), dtype=np.float32), (seen[:, 0], seen[:, 1])),
                          shape=(data.n_target_users, data.n_target_items))
        m.sum_duplicates()
        self._seen = m
        self._vectors = None
        if model is not None:
            with torch.no_grad():
                self._vectors = model.item_vectors()
            self._candidate_rows = torch.as_tensor(data.catalog.target_rows, device=self.device)

    def __repr__(self) -> str:
        return (f"<xdplug Recommender {self.method!r} ({self.kind}, version {self.meta.get('version', 1)}): "
                f"{len(self.users)} users, {len(self.items)} items, from {self.path}>")

    # -- look-ups --------------------------------------------------------------------------
    def lookups(self) -> tuple[dict, dict, dict, dict]:
        """Copies of the artifact's look-ups, for an update that grows them: user IDs and keys to
        target users, item IDs and keys to target items, catalog keys to rows, catalog rows to
        target items."""
        return dict(self._user_of), dict(self._item_of), dict(self._row_of), dict(self._target_of_row)

    def user_index(self, user) -> int:
        """Canonical index of a known target user (its ID in your files, or its prepared key)."""
        key = str(user).strip()
        if key in self._user_of:
            return self._user_of[key]
        if key in self._source_user_of:
            raise ArtifactError(self._source_only_problem(key))
        examples = ", ".join(repr(u) for u in self.users[:3])
        raise ArtifactError(f"unknown user {key!r}: not one of the {len(self.users)} target users of "
                            f"{self.path.name} (for example {examples}); recommend for a new user with "
                            "history=[...] (CLI: --history FILE)")

    def _source_only_problem(self, key: str) -> str:
        """Why a user known only in the source domain cannot be served by ID here (what to do instead)."""
        where = (f"user {key!r} is known only in the source domain of {self.path.name}, not one of its "
                 f"{len(self.users)} target users")
        if self.model is None:
            return (f"{where}; {self.kind} {self.method!r} scores a user from target items only: give the items "
                    "they would have in the target domain as history=[...] (CLI: --history FILE)")
        return (f"{where}; this artifact does not keep the source domain's interactions ({self.method!r} does "
                "not read a user's source history), so it cannot look theirs up: give their source items as "
                "history=[...] (CLI: --history FILE)")

    def check_user(self, user) -> None:
        """Can ``user`` be served by ID (a target user, or a source-only one this model reads)? Else ArtifactError."""
        if str(user).strip() in self._source_user_of:
            self.source_history(user)
        else:
            self.user_index(user)

    def source_history(self, user) -> list[int]:
        """Catalog rows of a source-only user's training items, where the artifact can serve them by ID.

        The cross-domain case itself: a user the target has never seen, known from the
        source. A strategy reads them as a new user whose history is their source items
        (the same path as ``history=[...]``); the artifact must keep the source domain's
        interactions, as it does for every model that reads a source history.
        """
        key = str(user).strip()
        s = self._source_user_of.get(key)
        if s is None:
            raise KeyError(key)
        pairs = self.data.source_train
        rows = self.data.catalog.source_rows[pairs[pairs[:, 0] == s, 1]] if len(pairs) else np.zeros(0, np.int64)
        if self.model is None or not len(rows):
            raise ArtifactError(self._source_only_problem(key))
        return sorted({int(r) for r in rows})

    def item_row(self, item) -> int:
        """Catalog row of an item (a target item's ID, a source item's ID or a catalog key)."""
        key = str(item).strip()
        if key in self._item_of:
            return int(self.data.catalog.target_rows[self._item_of[key]])
        aliases = self.ids.get("item_aliases") or {}
        if key in aliases:
            return int(aliases[key])
        candidates = [key, f"t:{key}", f"s:{key}"]
        if self.ids["align"].get("items") == "key":
            candidates.append("k:" + normalise_key(key))
        for candidate in candidates:
            if candidate in self._row_of:
                return self._row_of[candidate]
        raise KeyError(key)

    def _history_rows(self, history) -> tuple[np.ndarray, list[int]]:
        if isinstance(history, (str, bytes)):
            raise XdplugError("history must be a list of item IDs, not one string")
        items = [str(h).strip() for h in history if str(h).strip()]
        if not items:
            raise ArtifactError("the history is empty: give at least one item ID")
        rows, unknown = [], []
        for item in items:
            try:
                rows.append(self.item_row(item))
            except KeyError:
                unknown.append(item)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            examples = ", ".join(repr(i) for i in self.items[:3])
            raise ArtifactError(f"unknown item{'s' if len(unknown) > 1 else ''} {shown}: not in the catalog of "
                                f"{self.path.name} ({len(self.items)} target items, for example {examples})")
        if getattr(self.model, "reads_order", False):  # a sequence model: oldest first, a repeat at its latest place
            rows = np.array(list(dict.fromkeys(reversed(rows)))[::-1], dtype=np.int64)
        else:  # a set: one canonical order, so the same items score bit for bit the same
            rows = np.array(sorted(set(rows)), dtype=np.int64)
        return rows, self._targets_among(rows)

    def _targets_among(self, rows) -> list[int]:
        """The target item indices among catalog ``rows`` (a shared item is a target item too)."""
        return sorted({self._target_of_row[r] for r in np.asarray(rows).tolist() if r in self._target_of_row})

    # -- scores ----------------------------------------------------------------------------
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Scores ``[len(users), n_target_items]`` of known users (canonical indices)."""
        idx = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        with torch.no_grad():
            if self.model is not None:
                return self.model.score_users("target", idx, vectors=self._vectors)
            return self.scorer.score(idx).to(self.device, torch.float32)

    def score_history(self, history) -> tuple[torch.Tensor, list[int]]:
        """Scores ``[1, n_target_items]`` of a new user given only their items; and their target items."""
        return self._score_rows(*self._history_rows(history))

    def _score_rows(self, rows: np.ndarray, targets: list[int]) -> tuple[torch.Tensor, list[int]]:
        """Scores ``[1, n_target_items]`` of a user known by catalog ``rows``; and the target items among them."""
        with torch.no_grad():
            if self.model is not None:
                m = self.model
                u = m.new_user_vector(self._vectors, torch.as_tensor(rows, device=self.device))
                return m.scores_against(u, self._vectors, self._candidate_rows), targets
            if len(targets) < len(rows):
                raise ArtifactError(f"baseline {self.method!r} scores target items only; the history has "
                                    f"{len(rows) - len(targets)} item(s) of the source domain")
            return self._baseline_history(targets), targets

    def _baseline_history(self, targets: list[int]) -> torch.Tensor:
        """A baseline's scores for a new user: its scorer's ``score_history`` (declared by the scorer)."""
        name = self.meta["spec"].get("baseline") or self.method
        history = getattr(self.scorer, "score_history", None)
        if history is None:
            raise ArtifactError(f"baseline {name!r} has no inductive path for a new user's history")
        try:
            return history(targets).to(self.device)
        except NotApplicableError as exc:
            raise ArtifactError(f"baseline {name!r} has no inductive path: {exc}") from None

    # -- recommendations -------------------------------------------------------------------
    def _top(self, scores: torch.Tensor, exclude: list[np.ndarray], k: int) -> list[list[dict]]:
        scores = scores.to(torch.float32).clone()
        for row, items in enumerate(exclude):
            if len(items):
                scores[row, torch.as_tensor(items, dtype=torch.long, device=scores.device)] = -torch.inf
        scores = scores.masked_fill(torch.isnan(scores), -torch.inf)
        kk = min(k, scores.shape[1])
        values, indices = torch.topk(scores, kk, dim=1)
        out = []
        for vals, idx in zip(values.cpu().numpy(), indices.cpu().numpy()):
            out.append([{"item": self.items[i], "score": float(v), "text": self.texts[i]}
                        for v, i in zip(vals, idx) if np.isfinite(v)])
        return out

    @staticmethod
    def _check_k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise XdplugError(f"k must be a positive integer, got {k!r}")
        return int(k)

    def recommend(self, user=None, history=None, k: int = 10, exclude_seen: bool = True) -> list[dict]:
        """Top-``k`` items for a known ``user`` or for a new user's ``history`` (item IDs)."""
        k = self._check_k(k)
        if (user is None) == (history is None):
            raise XdplugError("give exactly one of user= (a known target user) and history= (a new user's items)")
        if user is not None:
            if str(user).strip() in self._source_user_of:  # known only in the source: their source items
                rows = np.array(self.source_history(user), dtype=np.int64)
                scores, targets = self._score_rows(rows, self._targets_among(rows))  # shared items they saw: seen
                return self._top(scores, [np.array(targets if exclude_seen else [], dtype=np.int64)], k)[0]
            u = self.user_index(user)
            scores = self.score_users(np.array([u]))
            seen = self._seen.indices[self._seen.indptr[u]:self._seen.indptr[u + 1]] if exclude_seen else []
            return self._top(scores, [np.asarray(seen)], k)[0]
        scores, targets = self.score_history(history)
        return self._top(scores, [np.array(targets if exclude_seen else [], dtype=np.int64)], k)[0]

    def user_key(self, user) -> str:
        """The key ``user`` is answered under: a target user's canonical key, or a source-only user's own
        (one this model reads by ID, as :meth:`check_user` says; else ArtifactError)."""
        key = str(user).strip()
        if key in self._source_user_of:
            self.source_history(key)
            return key
        return self.users[self.user_index(key)]

    def recommend_users(self, users=None, k: int = 10, exclude_seen: bool = True,
                        batch_size: int = 1024) -> dict[str, list[dict]]:
        """Top-``k`` for many known users (every target user by default), keyed by :meth:`user_key`.

        Target users are scored in batches; a user known only in the source domain is answered as
        :meth:`recommend` answers them (a new user whose history is their source items), so a batch
        serves everyone a single call does.
        """
        k = self._check_k(k)
        out = {}
        if users is None:
            index = np.arange(len(self.users))
        else:
            index = []
            for user in users:
                key = str(user).strip()
                if key in self._source_user_of:
                    out[key] = self.recommend(user=key, k=k, exclude_seen=exclude_seen)
                else:
                    index.append(self.user_index(key))
            index = np.array(index, dtype=np.int64)
        for start in range(0, len(index), batch_size):
            batch = index[start:start + batch_size]
            scores = self.score_users(batch)
            exclude = [self._seen.indices[self._seen.indptr[u]:self._seen.indptr[u + 1]] if exclude_seen
                       else np.zeros(0, dtype=np.int64) for u in batch]
            for u, recs in zip(batch, self._top(scores, exclude, k)):
                out[self.users[u]] = recs
        return out


def check_meta(meta: dict, registry, file: Path) -> None:
    """The stored spec passes the checks a config gets, before anything is built from it.

    The manifest's hashes catch damage, not intent: anyone who edits ``meta.json``
    can recompute them. So the method entry is checked against the config schema
    and rebuilt through the registry (its components' option checks, the RecBole
    baselines' refusal of strings RecBole would evaluate), and the stored config
    passes :mod:`xdplug.config`'s schema and checks. Any failure is an
    :class:`ArtifactError` naming ``file`` and the key.
    """
    kind, spec, config = meta.get("kind"), meta.get("spec"), meta.get("config")
    step = "spec"
    try:
        for key, types in (("method", str), ("seed", int)):
            if not isinstance(meta.get(key), types) or isinstance(meta.get(key), bool):
                raise ConfigError(key, f"expected {types.__name__}, got {meta.get(key)!r}")
        if not 0 <= meta["seed"] <= MAX_SEED:
            raise ConfigError("seed", f"expected an integer in [0, {MAX_SEED}] (a config's seeds), got {meta['seed']}")
        version = meta.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigError("version", f"expected a positive integer, got {version!r}")
        if not isinstance(meta.get("model", {}), dict) or not isinstance(meta.get("updates", []), list):
            raise ConfigError("model" if not isinstance(meta.get("model", {}), dict) else "updates",
                              "expected an object (model) and a list (updates)")
        if kind == "strategy":
            _check(spec, SCHEMA["strategies"][1], "spec", None)
            for key in ("encoder", "fusion", "adaptation"):
                if key not in spec:
                    raise ConfigError(f"spec.{key}", f"missing; a strategy names its {key}")
            build_strategy(spec, registry, "spec")
            n_union = (meta.get("model") or {}).get("n_union_users")
            if n_union is not None and (not isinstance(n_union, int) or isinstance(n_union, bool) or n_union < 0):
                raise ConfigError("model.n_union_users", f"expected a non-negative integer, got {n_union!r}")
        else:
            _check(spec, SCHEMA["baselines"][1], "spec", None)
            if "baseline" not in spec:
                raise ConfigError("spec.baseline", "missing; a baseline entry names its baseline")
            cls = registry.get("baseline", spec["baseline"], "spec.baseline")
            export_kind(cls(spec.get("params"), "spec.params"))
            check_pooling(spec, cls, "spec")
        step = "config"
        _check(config, SCHEMA, "config", None)
        try:
            validate(config, None, None)
        except ConfigError as exc:
            raise ConfigError(f"config.{exc.path}", str(exc).split(": ", 1)[-1]) from None
    except ArtifactError as exc:
        raise ArtifactError(f"{file}: {exc}") from None
    except XdplugError as exc:
        hint = (" (is the plugin that provides it installed?)" if isinstance(exc, UnknownComponentError) else
                "; the artifact's stored spec fails the checks a config gets: it was edited after export "
                "or written by another version of xdplug")
        raise ArtifactError(f"{file}: {exc}{hint}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ArtifactError(f"{file}: malformed {step} ({type(exc).__name__}: {exc}); not written by "
                            "`xdplug export`") from None


def load_artifact(path: str | Path, device: str | torch.device = "cpu", registry=None) -> Recommender:
    """Verify and load an artifact directory; returns a :class:`Recommender`."""
    quiet_recbole_logging()
    folder = Path(path).expanduser()
    verify_artifact(folder)
    meta = _read_json(folder / "meta.json")
    if not isinstance(meta, dict) or meta.get("kind") not in ("strategy", "baseline") or "spec" not in meta:
        raise ArtifactError(f"{folder / 'meta.json'}: not an artifact description (kind, spec, config missing)")
    # the spec is checked like a config before any model, dataset or RecBole object is built
    registry = installed_registry(registry)
    check_meta(meta, registry, folder / "meta.json")
    ids = _read_json(folder / "ids.json")
    data, arrays = _load_data(folder / "data")
    check_ids(folder / "ids.json", ids, data, len(data.catalog))
    device = torch.device(device)
    state = _torch_load(folder / "weights.pt", device)
    check_weights(folder / "weights.pt", state)
    if meta["kind"] == "strategy" and not refitted(meta["spec"], registry):
        check_user_rows(folder, meta, data, arrays, state)
    extras = _torch_load(folder / "extras.pt", device) if (folder / "extras.pt").is_file() else {}
    check_extras(folder / "extras.pt", extras, state)
    try:
        if meta["kind"] == "strategy" and refitted(meta["spec"], registry):
            scorer = _closed_form_from_data(meta, registry, data, device)
            return Recommender(folder, meta, data, ids, device, scorer=scorer, extras=extras, arrays=arrays)
        if meta["kind"] == "strategy":
            model = _strategy_from_state(meta, registry, data, arrays, state, device, folder / "weights.pt")
            return Recommender(folder, meta, data, ids, device, model=model, extras=extras, arrays=arrays)
        scorer = _baseline_from_state(meta, registry, data, state, device, folder / "weights.pt")
        return Recommender(folder, meta, data, ids, device, scorer=scorer, extras=extras, arrays=arrays)
    except ArtifactError:
        raise
    except XdplugError as exc:
        raise ArtifactError(f"{folder}: cannot rebuild {meta['kind']} {meta.get('method')!r} from its spec: {exc} "
                            "(is the plugin that provides it installed?)") from None


def check_weights(file: Path, state: dict) -> None:
    """Weights holding NaN would score NaN, and a NaN score is never recommended: an artifact of all-NaN
    weights served an empty list with exit 0. Refused at load, naming the tensor."""
    for name, tensor in state.items():
        if not tensor.is_floating_point() or not tensor.numel():
            continue
        nan = int(torch.isnan(tensor).sum())
        if nan == tensor.numel() or not bool(torch.isfinite(tensor).any()):
            raise ArtifactError(f"{file}: {name}: every value is NaN or infinite; expected trained weights "
                                "(a run whose training diverged? export it again after a run that learned)")
        if nan:
            raise ArtifactError(f"{file}: {name}: {nan} of {tensor.numel()} values are NaN; expected finite "
                                "weights (a run whose training diverged? export it again after a run that learned)")


def check_extras(file: Path, extras: dict, state: dict) -> None:
    """``extras.pt`` holds a text whitening (mean [d], matrix [d, k]) that maps new texts like the stored
    table (``update``): its shapes fit each other and the table, its values are finite."""
    if not extras:
        return
    unknown = sorted(set(extras) - {"whiten_mean", "whiten_matrix"})
    if unknown or len(extras) != 2:
        raise ArtifactError(f"{file}: expected the tensors whiten_mean and whiten_matrix, got {sorted(extras)}")
    mean, matrix = extras["whiten_mean"], extras["whiten_matrix"]
    table = state.get("text_encoder.table")
    if mean.dim() != 1 or matrix.dim() != 2 or matrix.shape[0] != mean.shape[0] or (
            table is not None and table.dim() == 2 and matrix.shape[1] != table.shape[1]):
        width = f" and [{mean.shape[0]}, {table.shape[1]}] to fit weights.pt's text table" if table is not None else ""
        raise ArtifactError(f"{file}: whiten_mean {tuple(mean.shape)} and whiten_matrix {tuple(matrix.shape)} do "
                            f"not fit: expected [d] and [d, k]{width}")
    check_weights(file, extras)


def check_user_rows(folder: Path, meta: dict, data, arrays: dict, state: dict) -> None:
    """The model's user-ID rows fit the data before the model allocates them.

    ``meta.model.n_union_users`` sizes an embedding (rows x dim floats): a tampered
    count would allocate gigabytes before the weights are found not to fit. It is
    at most the target plus the source users, covers every stored row, and equals
    the stored ``user_id.weight``'s rows.
    """
    file = folder / "meta.json"
    n_union = (meta.get("model") or {}).get("n_union_users")
    if n_union is None:
        return
    high = data.n_target_users + data.n_source_users
    if not 1 <= n_union <= high:
        raise ArtifactError(f"{file}: model.n_union_users: {n_union}; expected 1 to {high} (the target plus the "
                            "source users of data/keys.json)")
    for domain in ("target", "source"):
        rows = arrays.get(f"model_user_rows_{domain}")
        if rows is not None and rows.size and (rows.min() < 0 or rows.max() >= n_union):
            raise ArtifactError(f"{folder / 'data' / 'arrays.npz'}: model_user_rows_{domain}: row "
                                f"{int(rows.max() if rows.max() >= n_union else rows.min())} out of range; expected "
                                f"rows in [0, {n_union}) (meta.json model.n_union_users)")
    weight = state.get("user_id.weight")
    if weight is not None and weight.shape[0] != n_union:
        raise ArtifactError(f"{file}: model.n_union_users: {n_union}; the weights' user_id.weight has "
                            f"{weight.shape[0]} rows (weights.pt)")


def _strategy_from_state(meta, registry, data, arrays, state, device, file):
    user_rows, n_union = None, meta.get("model", {}).get("n_union_users")
    if "model_user_rows_target" in arrays:  # the layout of an updated artifact (new users appended)
        user_rows = {"target": arrays["model_user_rows_target"], "source": arrays["model_user_rows_source"]}
    encoder, _, _, _ = build_strategy(meta["spec"], registry, "strategy")
    text_module = _text_module_from_state(state, encoder, data, device)
    model, _, _ = build_strategy_model(meta["spec"], registry, data, device, meta["seed"],
                                       text_module=text_module, user_rows=user_rows, n_union_users=n_union)
    load_state(model, state, file)
    model.eval()
    return model


def refitted(spec: dict, registry) -> bool:
    """Does this strategy's family refit it from the stored data at load (``ModelFamily.export``) instead of
    loading stored weights?"""
    return family_class(spec, registry).export == "refit"


def _closed_form_from_data(meta, registry, data, device):
    with tempfile.TemporaryDirectory(prefix="xdplug-load-") as work, rng_kept():
        ctx = fit_context(data, meta["seed"], device, meta["config"], work, registry=registry)
        return fit_strategy(meta["spec"], registry, ctx, "strategy")


def _baseline_from_state(meta, registry, data, state, device, file):
    spec = meta["spec"]
    cls = registry.get("baseline", spec["baseline"], "baseline")
    baseline = cls(spec.get("params"), "baseline.params")
    how, pooled = export_kind(baseline), bool(spec.get("pooled"))
    with tempfile.TemporaryDirectory(prefix="xdplug-load-") as work, rng_kept():
        ctx = fit_context(data, meta["seed"], device, meta["config"], work, registry=registry)
        if how == "refit":
            return baseline.fit(ctx, pooled=pooled)
        try:
            return baseline.restore(ctx, state, pooled=pooled)
        except ArtifactError as exc:
            raise ArtifactError(f"{file}: {exc}") from None


def export_kind(baseline) -> str:
    """How an artifact restores ``baseline``: its class's declared ``export`` (``"state"`` or ``"refit"``)."""
    how = type(baseline).export
    if how is None:
        raise ArtifactError(f"baseline {baseline.name!r} cannot be exported: "
                            f"{type(baseline).__module__}.{type(baseline).__name__} declares export = None (declare "
                            "export = 'state' with export_state()/restore(), or 'refit' for a training-free, "
                            "deterministic baseline)")
    return how
