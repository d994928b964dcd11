"""Items/s of the ``bert`` encoder against a naive Hugging Face loop, same texts, same machine.

    python bench/bench_encoder.py                 # the 1,682 ML-100K movie texts
    python bench/bench_encoder.py --n 5000        # more texts (varied copies, no duplicates)
    python bench/bench_encoder.py --int8          # also try int8 dynamic quantisation (experiment)
    python bench/bench_encoder.py --onnx          # also time the encoder's runtime: onnx (needs .[onnx])
    python bench/bench_encoder.py --n 20000 --engine-only   # only the encoder's items/s on many texts

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
import importlib.util
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


def top_k_neighbours(x: np.ndarray, k: int = 10, chunk: int = 2048) -> np.ndarray:
    """Each row's k nearest other rows by cosine, in row chunks so 10^4+ texts fit in memory."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.empty((len(x), k), dtype=np.int64)
    for s in range(0, len(x), chunk):
        sim = x[s:s + chunk] @ x.T
        sim[np.arange(len(sim)), np.arange(s, s + len(sim))] = -np.inf
        out[s:s + chunk] = np.argpartition(-sim, k, axis=1)[:, :k]
    return out


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each text's top-k cosine neighbours that both embeddings agree on."""
    ka, kb = top_k_neighbours(a, k), top_k_neighbours(b, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ka, kb)]))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


ONNX_MISSING = ("--onnx needs onnxruntime and onnx (the bert encoder's optional runtime: onnx): "
                "pip install -e '.[onnx]'")


def fused_onnx_engine(engine, params: dict):
    """An encoder with ``runtime: onnx`` whose graph is rewritten by ``onnxruntime.transformers.optimizer``
    into fused Attention, SkipLayerNorm, BiasGelu and EmbedLayerNorm nodes (optimum's O2 level).

    Exported with eager attention, the pattern the optimizer recognises; cached beside the plain graph.
    """
    from onnxruntime.transformers import optimizer
    from transformers import AutoModel
    from xdplug.api import TextEmbeddingCache
    from xdplug_builtin.encoders import bert_onnx

    fused = type(engine)(params)
    fused._load()
    plain = bert_onnx.graph_path(TextEmbeddingCache().root, fused.model_id, fused.params["pooling"])
    path = plain.with_name("model-fused.onnx")
    if not path.is_file():
        eager = AutoModel.from_pretrained(str(fused.model_dir), attn_implementation="eager").eval()
        eager.pooler = None
        raw = bert_onnx.export(eager, fused.params["pooling"], plain.with_name("model-eager.onnx"))
        cfg = fused._config
        opt = optimizer.optimize_model(str(raw), model_type="bert", num_heads=cfg.num_attention_heads,
                                       hidden_size=cfg.hidden_size)
        print(f"onnx-fused graph: {dict((k, v) for k, v in opt.get_fused_operator_statistics().items() if v)}")
        opt.save_model_to_file(str(path))
    sess = bert_onnx.session(path, torch.get_num_threads())
    fused._onnx = lambda ids, mask: bert_onnx.run(sess, ids, mask)
    return fused


def compare_onnx(engine, texts: list[str], repeat: int, fused: bool = False) -> None:
    """Items/s of the torch engine and of ``runtime: onnx`` (same batches), alternating repeat by
    repeat, and how close the vectors are."""
    import onnxruntime

    params = {**engine.params, "runtime": "onnx"}
    sides = {"onnx": type(engine)(params)}
    if fused:
        sides["onnx-fused"] = fused_onnx_engine(engine, params)
    for side in sides.values():
        side.encode(texts[:64])  # exports the graph once (cached), opens the session; warm-up
    load_before = os.getloadavg()[0]
    wall = {"torch": [], **{k: [] for k in sides}}
    cpu = {k: [] for k in wall}
    vectors = {}
    for _ in range(repeat):
        for name, side in (("torch", engine), *sides.items()):
            dt, ct, vectors[name] = timed(lambda: side.encode(texts))
            wall[name].append(dt)
            cpu[name].append(ct)
    load_after = os.getloadavg()[0]
    n, ref = len(texts), vectors["torch"]
    for name in wall:
        best, med, per_cpu = n / min(wall[name]), n / statistics.median(wall[name]), n / min(cpu[name])
        line = f"{name:10s} {best:7.1f} items/s best, {med:7.1f} median, {per_cpu:7.1f} per CPU-second"
        if name != "torch":
            cos = cosine(vectors[name], ref)
            line += (f"; vs torch {min(wall['torch']) / min(wall[name]):.2f}x best, "
                     f"{statistics.median(wall['torch']) / statistics.median(wall[name]):.2f}x median, "
                     f"{min(cpu['torch']) / min(cpu[name]):.2f}x CPU time; "
                     f"cosine mean {cos.mean():.7f} min {cos.min():.7f}, "
                     f"top-10 neighbours shared {neighbour_overlap(ref, vectors[name]):.1%}")
        print(line)
    print(f"(ONNX Runtime {onnxruntime.__version__}, {torch.get_num_threads()} intra-op threads; "
          f"load average {load_before:.1f} -> {load_after:.1f})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=0, help="number of texts (default: the 1,682 ML-100K movies)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each side (best and median shown)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    ap.add_argument("--model", default="", help="encoder 'model' option (default: bundled all-MiniLM-L6-v2)")
    ap.add_argument("--int8", action="store_true", help="also time int8 dynamic quantisation (experiment, not an encoder option)")
    ap.add_argument("--onnx", action="store_true", help="also time the encoder with runtime: onnx (needs pip install -e '.[onnx]')")
    ap.add_argument("--onnx-fused", action="store_true", help="with --onnx: also the graph fused by ORT's transformer optimizer (needs onnx)")
    ap.add_argument("--engine-only", action="store_true", help="skip the naive loop and the cache runs")
    args = ap.parse_args(argv)
    if args.onnx and (importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None):
        print(ONNX_MISSING, file=sys.stderr)
        return 2
    if args.onnx and args.device != "cpu":
        print("--onnx compares on the CPU only (--device cpu)", file=sys.stderr)
        return 2

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

    n_tokens = [len(x) for x in tokenizer(texts, truncation=True, max_length=64)["input_ids"]]
    padded = sum(max(n_tokens[i:i + 32]) * len(n_tokens[i:i + 32]) for i in range(0, len(texts), 32))
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, device {device}")
    print(f"texts: {len(texts)} ({len(set(texts))} unique), {np.mean(n_tokens):.1f} tokens on average; "
          f"the naive loop computes {padded / sum(n_tokens):.2f}x the real tokens (padding)")
    if args.engine_only and args.onnx:
        compare_onnx(engine, texts, args.repeat, args.onnx_fused)  # times the engine too
        return 0
    if args.engine_only:
        load_before = os.getloadavg()[0]
        runs = [timed(lambda: engine.encode(texts)) for _ in range(args.repeat)]
        walls = [r[0] for r in runs]
        print(f"BertEncoder.encode (cache off): {len(texts) / min(walls):.1f} items/s best, "
              f"{len(texts) / statistics.median(walls):.1f} median ({min(walls):.1f} s best for {len(texts)} texts), "
              f"{len(texts) / min(r[1] for r in runs):.1f} per CPU-second; "
              f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
        return 0
    naive_model = AutoModel.from_pretrained(str(engine.model_dir)).eval().to(device)
    naive_encode(tokenizer, naive_model, texts[:64], device)

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
        cos = cosine(q, emb)
        print(f"int8 dynamic quantisation (experiment): {n / t_q:.1f} items/s, {n / t_q / best_naive:.2f}x naive "
              f"({n / c_q / cpu_naive:.2f}x in CPU time); "
              f"cosine to fp32 mean {cos.mean():.4f} min {cos.min():.4f}; "
              f"top-10 neighbours shared with fp32: {neighbour_overlap(emb, q):.1%}")
    if args.onnx:
        compare_onnx(engine, texts, args.repeat, args.onnx_fused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
