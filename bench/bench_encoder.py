"""Items/s of the ``bert`` encoder against a naive Hugging Face loop, same texts, same machine.

    python bench/bench_encoder.py                 # the 1,682 ML-100K movie texts
    python bench/bench_encoder.py --n 5000        # more texts (varied copies, no duplicates)
    python bench/bench_encoder.py --int8          # also try int8 dynamic quantisation (experiment)

The naive loop is what a tutorial does: AutoTokenizer + AutoModel, a fixed
batch of 32 in the given order, ``padding=True, truncation=True,
max_length=64``, ``torch.no_grad()``, mean pooling. The engine is
``BertEncoder.encode`` with the cache off (a cold encode). Both run with the
model already loaded, after one small warm-up, alternating repeat by repeat so
that a busy machine slows both alike; the best and the median time are shown.
Then the cache is filled once and read back (a second run encodes 0 texts).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def movie_texts(n: int | None = None) -> list[str]:
    """``Title (year). Genres: a, b.`` for every ML-100K movie shipped in recbole.

    With ``n`` above the 1,682 movies, further rounds vary each text (a part
    number, genres reversed) so no text repeats and deduplication gains nothing.
    """
    import recbole

    path = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.item"
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        names = [h.split(":")[0] for h in fh.readline().rstrip("\n").split("\t")]
        for line in fh:
            r = dict(zip(names, line.rstrip("\n").split("\t")))
            rows.append((r.get("movie_title", ""), r.get("release_year", ""), r.get("class", "").split()))
    texts = [f"{t} ({y}). Genres: {', '.join(g)}." for t, y, g in rows]
    n = n or len(texts)
    k = 1
    while len(texts) < n:
        texts += [f"{t} (part {k + 1}) ({y}). Genres: {', '.join(reversed(g))}." for t, y, g in rows]
        k += 1
    return texts[:n]


def naive_encode(tokenizer, model, texts: list[str], device) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            enc = tokenizer(texts[i:i + 32], padding=True, truncation=True, max_length=64, return_tensors="pt").to(device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).cpu().numpy())
    return np.concatenate(out)


def timed(fn):
    """Wall seconds, process CPU seconds and the result of ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each text's top-k cosine neighbours that both embeddings agree on."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -np.inf)
    np.fill_diagonal(sb, -np.inf)
    ka, kb = np.argsort(-sa, 1)[:, :k], np.argsort(-sb, 1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ka, kb)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=0, help="number of texts (default: the 1,682 ML-100K movies)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each side (best and median shown)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    ap.add_argument("--model", default="", help="encoder 'model' option (default: bundled all-MiniLM-L6-v2)")
    ap.add_argument("--int8", action="store_true", help="also time int8 dynamic quantisation (experiment, not an encoder option)")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from xdplug_builtin.encoders.bert import BertEncoder

    texts = movie_texts(args.n or None)
    engine = BertEncoder({"cache": False, "device": args.device, "model": args.model})
    device = engine.resolve_device()
    engine.encode(texts[:64])  # loads the model; warm-up
    tokenizer = AutoTokenizer.from_pretrained(str(engine.model_dir))
    naive_model = AutoModel.from_pretrained(str(engine.model_dir)).eval().to(device)
    naive_encode(tokenizer, naive_model, texts[:64], device)

    n_tokens = [len(x) for x in tokenizer(texts, truncation=True, max_length=64)["input_ids"]]
    padded = sum(max(n_tokens[i:i + 32]) * len(n_tokens[i:i + 32]) for i in range(0, len(texts), 32))
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, device {device}")
    print(f"texts: {len(texts)} ({len(set(texts))} unique), {np.mean(n_tokens):.1f} tokens on average; "
          f"the naive loop computes {padded / sum(n_tokens):.2f}x the real tokens (padding)")

    load_before = os.getloadavg()[0]
    t_naive, t_engine, c_naive, c_engine = [], [], [], []
    for _ in range(args.repeat):
        dt, ct, ref = timed(lambda: naive_encode(tokenizer, naive_model, texts, device))
        t_naive.append(dt)
        c_naive.append(ct)
        dt, ct, emb = timed(lambda: engine.encode(texts))
        t_engine.append(dt)
        c_engine.append(ct)
    n = len(texts)
    best_naive, best_engine = n / min(t_naive), n / min(t_engine)
    med_naive, med_engine = n / statistics.median(t_naive), n / statistics.median(t_engine)
    cpu_naive, cpu_engine = n / min(c_naive), n / min(c_engine)
    diff = float(np.abs(emb - ref).max())
    print(f"naive HF loop (batch 32, given order): {best_naive:7.1f} items/s best, {med_naive:7.1f} median, "
          f"{cpu_naive:7.1f} items per CPU-second")
    print(f"BertEncoder.encode (cache off):        {best_engine:7.1f} items/s best, {med_engine:7.1f} median, "
          f"{cpu_engine:7.1f} items per CPU-second")
    print(f"speed-up: {best_engine / best_naive:.2f}x (best wall), {med_engine / med_naive:.2f}x (median wall), "
          f"{cpu_engine / cpu_naive:.2f}x (CPU time)")
    print(f"max |engine - naive| over all embeddings: {diff:.2e}")
    load_after = os.getloadavg()[0]
    if max(t_naive) > 1.3 * min(t_naive) or max(t_engine) > 1.3 * min(t_engine) or max(load_before, load_after) > 2.5:
        print(f"note: the machine was busy (load average {load_before:.1f} -> {load_after:.1f}, repeats varied "
              f"up to {max(max(t_naive) / min(t_naive), max(t_engine) / min(t_engine)):.1f}x); "
              "wall figures are unreliable, CPU-time figures with --threads 1 hold up best")

    with tempfile.TemporaryDirectory() as home:
        os.environ["XDPLUG_HOME"] = home
        params = {"cache": True, "device": args.device, "model": args.model}
        first = BertEncoder(params)
        filled = first.encode(texts)
        fill = first.last_stats
        second = BertEncoder(params)  # a new run: nothing in memory, the cache on disk
        again = second.encode(texts)
        hit = second.last_stats
        print(f"cached: first run {fill['seconds']:.2f}s ({fill['encoded']} encoded, model load "
              f"{fill['load_seconds']:.1f}s not counted); second run {hit['seconds'] * 1000:.0f} ms "
              f"({hit['encoded']} encoded, {hit['cached']} from cache, model not loaded: {second._model is None}, "
              f"identical: {np.array_equal(again, filled)})")

    if args.int8:
        qmodel = torch.ao.quantization.quantize_dynamic(engine._model, {torch.nn.Linear}, dtype=torch.qint8)
        fp32_model, engine._model = engine._model, qmodel
        try:
            engine.encode(texts[:64])
            runs = [timed(lambda: engine.encode(texts)) for _ in range(args.repeat)]
            t_q, c_q, q = min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2]
        finally:
            engine._model = fp32_model
        cos = (q * emb).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(emb, axis=1)
        print(f"int8 dynamic quantisation (experiment): {n / t_q:.1f} items/s, {n / t_q / best_naive:.2f}x naive "
              f"({n / c_q / cpu_naive:.2f}x in CPU time); "
              f"cosine to fp32 mean {cos.mean():.4f} min {cos.min():.4f}; "
              f"top-10 neighbours shared with fp32: {neighbour_overlap(emb, q):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
