"""The report's outline: which sections, in which order, with which tables and plots.

Built once as blocks (:mod:`xdplug.report.blocks`) and rendered by both the
Markdown and the HTML writer, so the two never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Collection

import xdplug.report.tables as t
from .aggregate import LEARNING_FLAG, LEARNING_MARKER, MARKERS, ReportContext, evaluator_tables
from .blocks import Block, Bullets, Code, Details, FigureRef, Heading, Paragraph
from .edges import EDGE_TOLERANCE, describe_flag, tuning_edges
from .figures import curve_methods, primary_caption
from .verdict import Verdict


#: how the slice tables mark what a reader compares
SLICE_LEGEND = ("Bold: best value of the column; highlighted (italic in report.md): the best strategy of the "
                "column, to read against the reference's row (shaded in report.html).")

#: dataset keys with a place of their own; any other key is listed as a protocol setting
KNOWN_DATASET_KEYS = frozenset({"recipe", "regime", "cold_items", "domains", "overlap", "split", "protocol",
                                "warnings"})


def title(ctx: ReportContext) -> str:
    return f"xdplug report: {ctx.data.get('name') or 'unnamed'}"


def marker_legend() -> str:
    marks = ", ".join(f"{m} p < {p:g}" for p, m in reversed(MARKERS))
    return (
        f"Markers: {marks} in both paired per-user tests against the reference (t-test and Wilcoxon, "
        "Holm-corrected over the methods compared). An improvement without a marker was not significant "
        "or not tested."
    )


def learning_legend(ctx: ReportContext) -> str:
    """What † next to a method means; empty when every run learned."""
    if not any(s.n_not_learned for s in ctx.summaries):
        return ""
    return (f" {LEARNING_MARKER}: at least one run of the method did not learn (see \"Runs that did not learn\"); "
            "its scores are in the mean.")


def _not_learned(ctx: ReportContext) -> list[Block]:
    """Finished runs the runner flagged: best validation score at the first epoch, or a loss that never moved."""
    items = [f"{s.method}, seed {seed}: {reason[len(LEARNING_FLAG) + 1:].strip()}"
             for s in ctx.summaries for seed, reason in s.learning_flags]
    if not items:
        return []
    return [
        Heading(2, "Runs that did not learn"),
        Paragraph("These runs finished, but their training never improved on its start: no validation score "
                  "beat the first validated epoch's, or the training loss did not move (or was not finite). "
                  "Their scores are those of a (nearly) untrained model; check the learning rate and the "
                  "other training settings before reading them as the method's."),
        Bullets(items),
    ]


def _figures(keys: list[str], available: Collection[str]) -> list[Block]:
    return [FigureRef(k) for k in keys if k in available]


def build_document(ctx: ReportContext, verdict: Verdict, figures: Collection[str] = (), generated_at: str = "") -> list[Block]:
    """The whole report as blocks; ``figures`` names the plots the renderer can draw."""
    data = ctx.data
    dataset = data.get("dataset") or {}
    blocks: list[Block] = [Heading(1, title(ctx))]
    meta = [
        f"dataset {dataset.get('recipe', '–')} ({dataset.get('regime', '–')})",
        f"primary metric {ctx.primary}",
        f"seeds {', '.join(str(s) for s in data.get('seeds') or []) or '–'}",
        f"config {data.get('config_hash') or '–'}",
    ]
    if generated_at:
        meta.append(f"generated {generated_at}")
    blocks.append(Paragraph("; ".join(meta) + "."))

    blocks += _data_warnings(dataset)
    blocks += [Heading(2, "Verdict"), Paragraph(verdict.text)]
    blocks += _results(ctx, figures)
    blocks += _cold_start(ctx, figures)
    blocks += _beyond(ctx)
    blocks += _failures(ctx)
    blocks += _not_learned(ctx)
    if "training" in figures:
        blocks += [Heading(2, "Training curves"), FigureRef("training", _training_caption(ctx))]
    blocks += _tuning(ctx, figures)
    blocks += _protocol(ctx)
    blocks += [Heading(2, "Timings and memory"), t.timings_table(ctx)]
    return blocks


def _training_caption(ctx: ReportContext) -> str:
    """Which methods the training-curve figure leaves out, and why."""
    _, skipped = curve_methods(ctx)
    text = ("Validation scores on the target, comparable across methods (training losses are not: each "
            "method has its own loss and scale). Source-pretraining phases validate on held-out source "
            "interactions and are not drawn.")
    if skipped:
        text += f" Not drawn (fitted in one step or trained for one epoch): {', '.join(skipped)}."
    return text


def _data_warnings(dataset: dict) -> list[Block]:
    """The preparation's warnings (low text coverage, conflicting item rows), above the verdict."""
    warnings = [str(w) for w in dataset.get("warnings") or []]
    if not warnings:
        return []
    return [
        Heading(2, "Warnings"),
        Paragraph("The data preparation warned about the following; read the results with them in mind."),
        Bullets(warnings),
    ]


def _results(ctx: ReportContext, figures: Collection[str]) -> list[Block]:
    ref = ctx.reference or "none"
    if max((s.n_done for s in ctx.summaries), default=0) <= 1:
        spread = "Test metrics of a single seed (no spread to report: run more seeds for one)"
    else:
        spread = ("Test metrics, mean ± std over finished seeds (sample std; a method with one finished seed "
                  "shows its value alone)")
    blocks: list[Block] = [Heading(2, "Results")]
    if "primary" in figures:
        blocks.append(FigureRef("primary", primary_caption(ctx)))
    blocks += [
        Paragraph(
            f"{spread}, ranked by {ctx.primary}. Bold: best value of the column. Reference: {ref} (best baseline). "
            + marker_legend()
            + t.higher_better_note(ctx, ctx.groups.main)
            + learning_legend(ctx)
        ),
        t.main_table(ctx),
    ]
    blocks.append(Heading(3, "Improvement over the reference"))
    if ctx.comparisons:
        others = sorted({str(m) for _, m in ctx.comparisons} - {ctx.primary})
        if others and any(m == ctx.primary for _, m in ctx.comparisons):  # the primary first, the rest folded
            blocks += [t.improvement_table(ctx, [ctx.primary]),
                       Details(f"Other metrics tested ({', '.join(others)})", [t.improvement_table(ctx, others)])]
        else:
            blocks.append(t.improvement_table(ctx))
    else:
        blocks.append(Paragraph("No significance tests were run, so no improvement is marked significant."))
    for evaluator, columns, rows in evaluator_tables(ctx.data):
        blocks += [Heading(3, f"Comparisons: {evaluator}"), t.evaluator_table(columns, rows)]
    if ctx.groups.other_accuracy:
        blocks.append(Details("Other cut-offs", [t.metric_table(ctx, ctx.groups.other_accuracy)]))
    return blocks


def _cold_start(ctx: ReportContext, figures: Collection[str]) -> list[Block]:
    groups = ctx.groups
    blocks: list[Block] = [Heading(2, "Cold start")]
    if not groups.user_groups and not groups.other_slices and not groups.cold:
        return blocks + [Paragraph("No cold-start slices were measured.")]
    if groups.user_groups:
        blocks.append(Paragraph(
            "Target users grouped by their number of target training interactions "
            f"(fewest first), test {ctx.primary}. " + SLICE_LEGEND
        ))
        if any(ctx.primary in groups.sliced[lb] for lb in groups.user_groups):
            blocks.append(t.user_group_table(ctx, ctx.primary))
        others = sorted({b for lb in groups.user_groups for b in groups.sliced[lb]} - {ctx.primary},
                        key=lambda b: groups.all.index(b) if b in groups.all else len(groups.all))
        if others:
            blocks.append(Details("Other metrics by user group", [
                block for b in others for block in (Heading(4, b), t.user_group_table(ctx, b))
            ]))
    if groups.source_groups and any(ctx.primary in groups.sliced[lb] for lb in groups.source_groups):
        blocks += [Heading(3, "By source history"), Paragraph(
            "Target users grouped by the size of their history in the source domain (the same people; "
            f"0 = none), test {ctx.primary}: who gains from reading the other domain. " + SLICE_LEGEND),
            t.user_group_table(ctx, ctx.primary, groups.source_groups)]
    for label in groups.other_slices:
        size = ctx.slice_size(label)
        users = f" ({size:,.0f} users with such a test item)" if size is not None else ""
        blocks.append(Heading(3, f"Slice: {label}"))
        if groups.sliced[label]:
            blocks += [
                Paragraph(f"Test metrics measured on {label} only{users}; notes say what a method cannot score. "
                          + SLICE_LEGEND + _slice_reference(ctx, label)),
                t.slice_table(ctx, label),
            ]
        else:
            blocks.append(Paragraph(f"No metric could be measured on {label}{users}."))
    if groups.cold:
        blocks += [
            Heading(3, "Cold-item measures"),
            Paragraph("Share of hits that are cold items, and share of cold items a method can represent."),
            t.metric_table(ctx, groups.cold, notes=True),
        ]
    return blocks


def _slice_reference(ctx: ReportContext, label: str) -> str:
    """Where a slice is tested against a reference of its own (the cold items), the sentence that says so."""
    reference = ctx.slice_reference(label)
    if not reference:
        return ""
    return (f" On this slice the highlighted row and the paired tests (Improvement over the reference, other metrics) "
            f"are against {reference}, the best baseline on it or the one the config names "
            f"(evaluation.cold_reference): an ID-only model cannot score these items.")


def _beyond(ctx: ReportContext) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Beyond accuracy")]
    if not ctx.groups.beyond and not ctx.groups.beyond_other:
        return blocks + [Paragraph("No beyond-accuracy metrics were measured.")]
    if ctx.groups.beyond:
        blocks += [
            Paragraph("Bold: best value of the column." + t.higher_better_note(ctx, ctx.groups.beyond)),
            t.metric_table(ctx, ctx.groups.beyond),
        ]
    if ctx.groups.beyond_other:
        blocks.append(Details("Other cut-offs", [
            Paragraph("Bold: best value of the column." + t.higher_better_note(ctx, ctx.groups.beyond_other)),
            t.metric_table(ctx, ctx.groups.beyond_other),
        ]))
    return blocks


def _failures(ctx: ReportContext) -> list[Block]:
    runs = t.unfinished_runs(ctx)
    blocks: list[Block] = [Heading(2, "Failed and not-applicable runs")]
    if not runs:
        return blocks + [Paragraph("Every run finished.")]
    blocks.append(t.failures_table(ctx))
    details = [
        block
        for r in runs
        if r.get("error") or r.get("notes")
        for block in (Heading(4, f"{r.get('method')}, seed {r.get('seed')} ({r.get('status')})"),
                      Code(str(r.get("error") or r.get("notes"))))
    ]
    if details:
        blocks.append(Details("Full errors", details))
    return blocks


def _tuning(ctx: ReportContext, figures: Collection[str]) -> list[Block]:
    tuning = ctx.data.get("tuning") or {}
    if not tuning:
        return []
    blocks: list[Block] = [
        Heading(2, "Tuning"),
        Paragraph("Hyper-parameters chosen on the validation split; the test split was not used. "
                  f"Search: \"still improving\" when the best validation value was first reached within the "
                  f"last {t.CONVERGED_TAIL:.0%} of the trials (more trials may find better values). "
                  f"At the edge of its range: a chosen value within {EDGE_TOLERANCE:.0%} of its range's width "
                  "from a bound (on the log axis for log-scaled ranges; a bound of 0 on a linear range and "
                  "booleans are not flagged): the optimum may lie outside the space, so widen it. "
                  "A staged search (tuning.staged) tunes each component of an ensemble alone, its stages "
                  "splitting the method's fits, then weighs the components on their stored validation "
                  "scores; its flags are its stages'."),
        t.tuning_summary_table(ctx),
    ]
    edges = tuning_edges(tuning)
    if edges:
        blocks.append(Paragraph(f"{len(edges)} tuned method(s) chose a value at the edge of its search range: "
                                + "; ".join(f"{m}: " + ", ".join(describe_flag(f) for f in flags)
                                            for m, flags in edges.items()) + "."))
    for method, tu in tuning.items():
        tu = tu or {}
        blocks += _figures([f"tuning:{method}"], figures)
        blocks.append(Details(f"{method}: search space and trials", [
            Code(json.dumps(tu.get("space") or {}, indent=2, sort_keys=True, default=str)),
            t.tuning_table(str(method), tu),
        ]))
    return blocks


def _evaluated_users(data: dict) -> list[tuple[str, str]]:
    """A row saying that only a sample of users was ranked (``evaluation.max_users``), when so."""
    limit = (((data.get("config") or {}).get("evaluation") or {}).get("max_users")) or 0
    if not limit:
        return []
    return [("evaluated users", f"a seeded sample of at most {limit:,} users per split, the same for every "
                                "method (evaluation.max_users)")]


def _protocol(ctx: ReportContext) -> list[Block]:
    data = ctx.data
    dataset = data.get("dataset") or {}
    blocks: list[Block] = [
        Heading(2, "Protocol"),
        t.key_value_table([
            ("dataset recipe", dataset.get("recipe")),
            ("regime", dataset.get("regime")),
            ("cold items (dataset.cold_items)", dataset.get("cold_items")),
            *((k.replace("_", " "), v) for k, v in dataset.items() if k not in KNOWN_DATASET_KEYS),
            ("primary metric", ctx.primary),
            *_evaluated_users(data),
            ("reference", ctx.reference),
            ("seeds", ", ".join(str(s) for s in data.get("seeds") or [])),
            ("device", data.get("device")),
            ("config hash", data.get("config_hash")),
            ("report name", data.get("name")),
        ]),
    ]
    if dataset.get("domains"):
        blocks += [Heading(3, "Domains"), t.domains_table(dataset)]
    if dataset.get("overlap"):
        blocks += [Heading(3, "Overlap"), t.overlap_table(dataset["overlap"])]
    if dataset.get("split"):
        blocks += [Heading(3, "Split"), t.split_table(dataset["split"])]
    if dataset.get("protocol"):
        blocks += [Heading(3, "Evaluation protocol"), t.key_value_table(list(dataset["protocol"].items()))]
    budgets = [f"{m}: {t.budget_text(tu or {})}" for m, tu in (data.get("tuning") or {}).items()]
    if budgets:
        blocks += [Heading(3, "Tuning budget"), Bullets(budgets)]
    if data.get("versions"):
        blocks += [Heading(3, "Versions"), t.key_value_table(list(data["versions"].items()), ("Package", "Version"))]
    blocks += [Heading(3, "Methods"), t.methods_table(ctx)]
    if data.get("config"):
        blocks.append(Details("Resolved configuration", [
            Code(json.dumps(data["config"], indent=2, sort_keys=True, default=str)),
        ]))
    return blocks
