"""The ``llm`` text encoder: item texts through a local decoder LLM (Llama, Qwen, Mistral style), pooled.

The "large model" of a text-based recommender is a decoder LLM as often as a BERT: LLM-based
embedders (E5-Mistral, gte-Qwen, Qwen3-Embedding, LLM2Vec) read a causal LM's hidden states.
This encoder does the same for any Hugging Face causal-LM directory, loaded offline
(``local_files_only``): the base model only (``AutoModel``, no LM head), frozen.

* ``pooling: last`` takes the hidden state of the text's last token, the only one that has seen
  the whole text under causal attention; an EOS token is appended first (``append_eos``), as those
  embedders do. ``pooling: mean`` averages every token's state.
* ``instruction`` is prefixed to every text ("Represent this movie for recommendation: "), the
  way instruction-tuned embedders are prompted; ``layer`` picks the hidden state (0: the token
  embeddings, -1: the last block's output with the final norm; for a base LM that was never
  trained to embed, a middle layer is often the better text vector).
* Batches are built here, right-padded, from unpadded token ids (sorted by length and sized by a
  token budget, as for ``bert``): under causal attention a text's tokens never attend to the
  padding after them, and the last token is read at each row's own length, so a text's vector
  does not depend on its batch or on the padding side the tokenizer declares.
* Weights load in bfloat16 on CUDA (float16 where the GPU has no bf16) and float32 on the CPU,
  where bf16 matmuls are slow without native units.

Vectors are cached on disk like ``bert``'s (:mod:`xdplug.textcache`): the namespace is the model
files' identity plus every option that changes a vector (pooling, layer, EOS, instruction, weight
dtype, max_length).
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import numpy as np
import torch

from xdplug.api import Bool, Choice, ConfigError, Int, Str, TextEmbeddingCache

from .bert import _LOADED, WHITEN, BertEncoder, quiet_transformers

logger = logging.getLogger(__name__)

POOLINGS = ("last", "mean")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: files that mark a directory's tokenizer (one is enough)
_TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
DOWNLOAD_HINT = ("download one first, e.g. `hf download Qwen/Qwen2.5-0.5B --local-dir models/qwen2.5-0.5b` "
                 "(pip install huggingface_hub), and set model to that directory")


def weight_dtype(choice: str, device: torch.device, bf16_supported: bool | None = None) -> torch.dtype:
    """The dtype the weights load in: ``choice``, or for ``auto`` float32 on a CPU and bfloat16 on
    CUDA (float16 on a GPU without bf16). ``bf16_supported`` defaults to asking torch."""
    if choice != "auto":
        return _TORCH_DTYPES[choice]
    if device.type != "cuda":
        return torch.float32
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16_supported else torch.float16


def missing_files(model_dir: Path) -> list[str]:
    """What a causal-LM directory lacks to be loaded: its config, weights or tokenizer (empty if complete)."""
    missing = []
    if not (model_dir / "config.json").is_file():
        missing.append("config.json")
    if not any(p.is_file() and p.name.endswith((".safetensors", ".bin")) for p in model_dir.iterdir()):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if not any((model_dir / name).is_file() for name in _TOKENIZER_MARKERS):
        missing.append(f"tokenizer files ({' or '.join(_TOKENIZER_MARKERS)})")
    return missing


class LlmEncoder(BertEncoder):
    """Pooled hidden states of a local decoder LLM (last token or mean), frozen and disk-cached."""

    name = "llm"
    role = "text"
    description = ("decoder-LLM text embeddings (any local Hugging Face causal LM: Llama, Qwen, Mistral; "
                   "last-token or mean pooling, optional instruction), disk-cached")
    defaults = {
        "model": Str("", help="a local Hugging Face causal-LM directory, or a hub id already in the local cache"),
        "pooling": Choice("last", POOLINGS),
        "instruction": Str("", help="prefixed to every text, e.g. 'Represent this item for recommendation: '"),
        "layer": Int(-1, -1000, 1000, help="hidden state read: 0 = token embeddings, i = after block i, "
                     "-1 = the last (with the final norm), negative counts from the end"),
        "append_eos": Bool(True, help="end each text with the tokenizer's EOS token (what last-token embedders do)"),
        "max_length": Int(256, 2, 1_000_000),
        "batch_size": Int(0, 0, 1_000_000, help="0 = auto (token budget sized for the device)"),
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "dtype": Choice("auto", DTYPES, help="weights' dtype; auto = bfloat16 on CUDA, float32 on CPU"),
        "cache": Bool(True),
        "whiten": Choice("none", WHITEN),
        "whiten_dim": Int(0, 0, 100_000, help="0 = keep every direction"),
        "normalize": Bool(False),
    }
    #: which (model, dtype) ``_model`` holds
    _loaded_key: str | None = None

    def _validate(self) -> None:
        p = self.params
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", p["device"]):
            raise ConfigError(self._opt("device"), f"{p['device']!r} is not auto, cpu, cuda or cuda:N")
        if p["whiten_dim"] > 0 and p["whiten"] == "none":
            raise ConfigError(self._opt("whiten_dim"), "needs whiten: pca or whiten")
        if not p["model"].strip():
            raise ConfigError(self._opt("model"), f"the llm encoder needs a model: a local Hugging Face causal-LM "
                              f"directory (config.json, weights, tokenizer); {DOWNLOAD_HINT}")

    # -- model files -------------------------------------------------------------
    def _local_model_dir(self) -> Path:
        """The model directory: a local directory holding config, weights and tokenizer, or a hub id's
        snapshot in the local Hugging Face cache. Nothing is downloaded, nothing is loaded."""
        spec, opt = self.params["model"].strip(), self._opt("model")
        path = Path(spec).expanduser()
        if path.is_dir():
            model_dir = path.resolve()
        elif path.exists():
            raise ConfigError(opt, f"{spec!r} is a file; expected a Hugging Face model directory")
        else:
            model_dir = self._cached_hub_dir(spec)
        missing = missing_files(model_dir)
        if missing:
            raise ConfigError(opt, f"{model_dir} is not a loadable causal-LM directory: it has no "
                              f"{', no '.join(missing)}; expected the files of a Hugging Face model "
                              f"(config.json, model.safetensors, tokenizer.json); {DOWNLOAD_HINT}")
        return model_dir

    def _cached_hub_dir(self, spec: str) -> Path:
        """A hub id's snapshot in the local Hugging Face cache (``local_files_only``: never downloaded)."""
        from transformers.utils import cached_file

        where = f" (relative to the current directory {Path.cwd()})" if not Path(spec).expanduser().is_absolute() else ""
        try:
            return Path(cached_file(spec, "config.json", local_files_only=True)).parent
        except Exception:  # noqa: BLE001 - not a hub id, or not in the cache
            raise ConfigError(self._opt("model"), f"no such model directory: {spec!r}{where}, and no hub id of that "
                              f"name in the local Hugging Face cache; {DOWNLOAD_HINT}") from None

    def _resolve(self) -> None:
        """Model directory, config and identity (super), then the options checked against the config."""
        if self._model_id is not None:
            return
        super()._resolve()
        layers = getattr(self._config, "num_hidden_layers", None)
        layer = self.params["layer"]
        if isinstance(layers, int) and not -(layers + 1) <= layer <= layers:
            self._model_id = None  # not resolved: the next call raises again
            raise ConfigError(self._opt("layer"), f"{layer} but the model has {layers} layers "
                              f"(hidden states 0..{layers}, or -1..-{layers + 1} from the end)")

    def _load(self, device: torch.device | None = None) -> None:
        """Tokenizer and base model (no LM head) in the dtype for ``device``, frozen, shared per process."""
        self._resolve()
        device = self.resolve_device(device)
        dtype = weight_dtype(self.params["dtype"], device)
        key = f"llm:{self._model_id}:{dtype}"
        if self._model is not None and self._loaded_key == key:
            return
        loaded = _LOADED.get(key)
        if loaded is None:
            from transformers import AutoModel, AutoTokenizer

            try:
                with quiet_transformers():
                    tokenizer = AutoTokenizer.from_pretrained(str(self._model_dir), local_files_only=True)
                    model = AutoModel.from_pretrained(str(self._model_dir), local_files_only=True,
                                                      **_dtype_argument(dtype))
            except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, KeyError...
                raise ConfigError(self._opt("model"), f"cannot load the model in {self._model_dir}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            model.eval().requires_grad_(False)
            loaded = _LOADED[key] = (tokenizer, model)
            logger.info("loaded LLM %s (%s) from %s", self._model_id, dtype, self._model_dir)
        self._tokenizer, self._model = loaded
        self._loaded_key = key

    def _cache_space(self, device: torch.device | None = None):
        """The namespace of the model files and every option that changes a vector, the weights'
        dtype on ``device`` included (bf16 vectors from a GPU are not the CPU's fp32 ones)."""
        if self._cache is None:
            self._cache = TextEmbeddingCache()
        p = self.params
        dtype = str(weight_dtype(p["dtype"], self.resolve_device(device))).removeprefix("torch.")
        instruction = hashlib.sha256(p["instruction"].encode()).hexdigest()[:12] if p["instruction"] else "none"
        # one string for every option that changes a vector: the namespace's hash covers it
        pooling = f"{p['pooling']}-layer{p['layer']}-eos{int(p['append_eos'])}-instr{instruction}-{dtype}"
        info = {"model_dir": str(self._model_dir), "instruction": p["instruction"], "encoder": self.name}
        return self._cache.space(self.model_id, pooling, p["max_length"], info=info)

    # -- encoding --------------------------------------------------------------
    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of ``instruction + text``, at most ``max_length`` with the EOS, never empty."""
        tok, p = self._tokenizer, self.params
        eos = tok.eos_token_id if p["append_eos"] else None
        room = p["max_length"] - (eos is not None)
        ids = tok([p["instruction"] + t for t in texts], truncation=True, max_length=room,
                  return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        if eos is not None:
            ids = [x if x and x[-1] == eos else x + [eos] for x in ids]
        # a text with no token at all (empty, no BOS, no EOS) still needs one position to read
        filler = next((t for t in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) if t is not None), 0)
        return [x or [filler] for x in ids]

    def _compute(self, texts: list[str], device: torch.device) -> np.ndarray:
        """Run the LLM over ``texts`` (no cache): length-sorted, right-padded batches, inference mode."""
        self._load(device)
        model = self._model
        if next(model.parameters()).device != device:
            model.to(device)
        ids = self._tokenize(texts)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        pad = self._tokenizer.pad_token_id
        pad = pad if pad is not None else (self._tokenizer.eos_token_id or 0)
        layer, last = self.params["layer"], self.params["pooling"] == "last"
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for idx, batch in self._padded_batches(ids, lengths, pad, device):
                mask = torch.from_numpy((np.arange(batch.shape[1])[None, :] < lengths[idx][:, None]).astype(np.int64)).to(device)
                result = model(input_ids=torch.from_numpy(batch).to(device), attention_mask=mask,
                               output_hidden_states=layer != -1, use_cache=False)
                hidden = (result.last_hidden_state if layer == -1 else result.hidden_states[layer]).float()
                if last:
                    rows = torch.arange(len(idx), device=device)
                    pooled = hidden[rows, torch.from_numpy(lengths[idx] - 1).to(device)]
                else:
                    m = mask.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * m).sum(dim=1) / m.sum(dim=1)
                out[idx] = pooled.cpu().numpy()
        return out


def _dtype_argument(dtype: torch.dtype) -> dict:
    """``from_pretrained``'s dtype keyword: ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers

    major, minor = (int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}
