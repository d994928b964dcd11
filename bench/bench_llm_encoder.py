"""Texts/s of the ``llm`` encoder on a model of a real LLM's shape, against ``bert`` (MiniLM), same texts.

    python bench/bench_llm_encoder.py                      # Qwen2.5-0.5B's shape, 100 ML-100K movie texts
    python bench/bench_llm_encoder.py --n 300 --layers 6   # fewer blocks (time scales with them)
    python bench/bench_llm_encoder.py --model DIR          # a real downloaded model instead

No LLM weights can be downloaded on this project's machines, so by default the model is
randomly initialised with Qwen2.5-0.5B's configuration (hidden 896, 24 blocks, MLP 4864,
14 heads / 2 KV heads, biased Q/K/V, vocabulary 151,936, tied embeddings): the time per token
depends on the shapes, not on the weights' values. Its tokenizer is MiniLM's WordPiece (the
``bert`` encoder's), so both encoders see the same tokens (Qwen's own BPE splits titles
differently; the count per text is printed). Both encoders run cold (cache off) with the model loaded, after a warm-up;
the best and the median of ``--repeat`` alternating repeats are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encoder import movie_texts  # noqa: E402

#: Qwen2.5-0.5B's shapes; as a Llama with biased Q/K/V projections it is Qwen2's computation
QWEN25_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, attention_bias=True,
                  tie_word_embeddings=True, rope_theta=1_000_000.0, rms_norm_eps=1e-6)


def save_qwen_shaped(folder: Path, layers: int) -> Path:
    """A randomly initialised causal LM of Qwen2.5-0.5B's shape (``layers`` blocks) with MiniLM's tokenizer."""
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from xdplug_builtin.encoders.bert import default_model_dir

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**{**QWEN25_05B, "num_hidden_layers": layers})).save_pretrained(folder)
    # MiniLM's tokenizer.json as a generic fast tokenizer (a qwen2 config would have transformers
    # load it as Qwen2Tokenizer, hence the llama architecture); it ends every text with [SEP] = EOS
    wordpiece = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    PreTrainedTokenizerFast(tokenizer_object=wordpiece, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                            sep_token="[SEP]", eos_token="[SEP]").save_pretrained(folder)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="texts (ML-100K movie texts; default 100)")
    ap.add_argument("--layers", type=int, default=24, help="blocks of the Qwen2.5-0.5B-shaped model (default 24)")
    ap.add_argument("--model", default="", help="a real causal-LM directory instead of the random one")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from xdplug_builtin.encoders.bert import BertEncoder
    from xdplug_builtin.encoders.llm import LlmEncoder

    texts = movie_texts(args.n)
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        t0 = time.perf_counter()
        model_dir = Path(args.model) if args.model else save_qwen_shaped(Path(tmp) / "qwen-shaped", args.layers)
        built = time.perf_counter() - t0
        encoders = {"llm (last)": LlmEncoder({"model": str(model_dir), "cache": False, "device": "cpu"}),
                    "llm (mean)": LlmEncoder({"model": str(model_dir), "cache": False, "device": "cpu",
                                              "pooling": "mean"}),
                    "bert (MiniLM)": BertEncoder({"cache": False, "device": "cpu"})}
        loads, tokens = {}, {}
        for name, enc in encoders.items():
            t0 = time.perf_counter()
            enc.encode(texts[:4])  # loads the model; a warm-up
            loads[name] = time.perf_counter() - t0
            tokens[name] = sum(len(x) for x in enc._tokenize(texts))
        times: dict[str, list[float]] = {name: [] for name in encoders}
        for _ in range(args.repeat):
            for name, enc in encoders.items():
                t0 = time.perf_counter()
                enc.encode(texts)
                times[name].append(time.perf_counter() - t0)
    params = sum(p.numel() for p in encoders["llm (last)"]._model.parameters())
    print(f"model: {'random, Qwen2.5-0.5B shape, ' + str(args.layers) + ' blocks' if not args.model else model_dir}"
          f" ({params / 1e6:.0f}M parameters without the LM head; built and saved in {built:.1f} s)")
    print(f"{len(texts)} ML-100K movie texts, {torch.get_num_threads()} torch threads, CPU fp32, cache off")
    print("| encoder | load + warm-up s | tokens/text | texts/s best | texts/s median |")
    print("|---|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {loads[name]:.1f} | {tokens[name] / len(texts):.1f} | {len(texts) / min(ts):.1f} | "
              f"{len(texts) / statistics.median(ts):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
