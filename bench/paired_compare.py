"""Two methods of one run compared user by user: the paired t-test and Wilcoxon over users, seeds averaged.

The report tests every method against the best control; this answers "does A beat B" for any two
methods of the same run (e.g. a model with text priors against the same model without text):

    python bench/paired_compare.py runs/ml1m-ml100k-sparse/per_user.csv factor-text-joint factor-joint
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
from scipy import stats


def compare(path: str, a: str, b: str, metric: str = "ndcg@10") -> dict:
    df = pd.read_csv(path)
    df = df[(df["metric"] == metric) & df["method"].isin([a, b])]
    seeds = {m: set(df.loc[df["method"] == m, "seed"]) for m in (a, b)}
    missing = [m for m in (a, b) if not seeds[m]]
    if missing:
        raise SystemExit(f"{path}: no {metric} rows for {', '.join(map(repr, missing))}")
    common = sorted(seeds[a] & seeds[b])
    df = df[df["seed"].isin(common)]
    wide = df.groupby(["user", "method"])["value"].mean().unstack("method").dropna()  # seeds averaged per user
    x, y = wide[a].to_numpy(), wide[b].to_numpy()
    return {"metric": metric, "seeds": common, "users": len(wide), "a": x.mean(), "b": y.mean(),
            "gain": x.mean() / y.mean() - 1, "t": stats.ttest_rel(x, y).statistic, "t_p": stats.ttest_rel(x, y).pvalue,
            "wilcoxon_p": stats.wilcoxon(x, y).pvalue if (x != y).any() else 1.0}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("per_user_csv")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--metric", default="ndcg@10")
    args = ap.parse_args(argv)
    r = compare(args.per_user_csv, args.a, args.b, args.metric)
    print(f"{args.a} vs {args.b} ({r['metric']}, seeds {r['seeds']} averaged, {r['users']} users): "
          f"{r['a']:.4f} vs {r['b']:.4f} ({r['gain']:+.2%}), paired t = {r['t']:.2f} (p = {r['t_p']:.3g}), "
          f"Wilcoxon p = {r['wilcoxon_p']:.3g}")


if __name__ == "__main__":
    sys.exit(main())
