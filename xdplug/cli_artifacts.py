"""CLI commands that serve recommendations from finished runs (export, recommend, update).

::

    xdplug export CONFIG --method NAME [--seed S] [-o DIR] [--force]
    xdplug recommend ARTIFACT (--user U | --history FILE) [-k 10] [--include-seen] [--json]
    xdplug update ARTIFACT NEW_INTERACTIONS [--items FILE] [--epochs 3] [--holdout 0.1] [-o DIR] [--json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .cli_common import _load, _plugins, _table, device_arg, option_arg
from .errors import STORAGE_ERRNOS, XdplugError, storage_error
from .options import Int
from .paths import check_writable


def _shorten(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_export(args) -> int:
    from .artifact import export_run

    config = _load(args)

    def progress(message):
        if not args.quiet:
            print(message, file=sys.stderr)

    fix = "choose a writable folder with -o DIR"
    if args.out:  # before the method is trained again: a read-only -o folder is known now
        check_writable(Path(args.out).expanduser(), "the artifact", fix)
    try:
        path, report = export_run(config, args.method, seed=args.seed, out=args.out, overwrite=args.force,
                                  progress=progress, registry=_plugins(args).registry)
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        raise storage_error(exc, exc.filename or args.out or "the artifact folder", "the artifact", fix) from None
    rep = report["reproduction"]
    if args.json:
        print(json.dumps({"path": str(path), **report}, indent=2, default=str))
        return 0
    print(f"exported {report['method']} (seed {report['seed']}, run {report['run_id']}) to {path}")
    stored = "n/a" if rep["stored"] is None else f"{rep['stored']:.4f}"
    verdict = "reproduced" if rep["match"] else "DIFFERS from the stored run"
    print(f"validation {rep['valid_metric']}: stored {stored}, retrained {rep['retrained']:.4f} ({verdict})")
    if not rep["match"]:
        print("warning: the retrained model is not bit-identical to the stored run (a different device or "
              "thread count can change floating-point results); the artifact holds the retrained model",
              file=sys.stderr)
    print(f"try: xdplug recommend {path} --user {_first_user(path)} -k 10")
    return 0


def _first_user(path: Path) -> str:
    try:
        users = json.loads((Path(path) / "ids.json").read_text())["users"]
        return users[0] if users else "USER"
    except (OSError, ValueError, KeyError):
        return "USER"


def _read_history(file: str) -> list[str]:
    path = Path(file).expanduser()
    if not path.is_file():
        raise XdplugError(f"{path}: history file not found (one item ID per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise XdplugError(f"{path}: the history file is not UTF-8 text (byte {exc.start}, line {line}: "
                          f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8, one item ID per line") from None
    except OSError as exc:
        raise XdplugError(f"{path}: cannot read the history file: {exc.strerror or exc}") from None
    items = [line.strip() for line in text.splitlines()]
    items = [line for line in items if line and not line.startswith("#")]
    if not items:
        raise XdplugError(f"{path}: the history file lists no item (one item ID per line)")
    return items


def cmd_recommend(args) -> int:
    from .artifact import load_artifact

    if (args.user is None) == (args.history is None):
        raise XdplugError("give exactly one of --user USER (a known target user) and --history FILE "
                          "(a new user's item IDs, one per line)")
    from .recbole.compat import resolve_device

    history = _read_history(args.history) if args.history is not None else None  # before the slow load
    rec = load_artifact(args.artifact, device=resolve_device(args.device), registry=_plugins(args).registry)
    if args.user is not None:
        recs = rec.recommend(user=args.user, k=args.k, exclude_seen=not args.include_seen)
    else:
        recs = rec.recommend(history=history, k=args.k, exclude_seen=not args.include_seen)
    if args.json:
        print(json.dumps(recs, indent=2))
        return 0

    print(_table([[str(i + 1), r["item"], f"{r['score']:.4f}", _shorten(r["text"])] for i, r in enumerate(recs)],
                 ["rank", "item", "score", "text"]))
    return 0


def _fmt(metrics: dict, key: str) -> str:
    return "n/a" if key not in metrics else f"{metrics[key]:.4f}"


def cmd_update(args) -> int:
    from .artifact import update_artifact
    from .recbole.compat import resolve_device

    def progress(message):
        if not args.quiet:
            print(message, file=sys.stderr)

    report = update_artifact(args.artifact, args.interactions, items=args.items, out=args.out,
                             epochs=args.epochs, holdout=args.holdout, seed=args.seed,
                             learning_rate=args.learning_rate, replay=args.replay,
                             device=resolve_device(args.device),
                             progress=progress, registry=_plugins(args).registry)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"new version {report['version']}: {report['path']} (the previous one, {report['from']}, is unchanged)")
    print(f"new interactions: {report['new_interactions']} ({report['new_users']} new users, "
          f"{report['new_items']} new items; {report['ignored_known']} already known, "
          f"{report['ignored_below_min_rating']} below the rating threshold)")
    for kind in ("users", "items"):  # which of them were new to the data, which the filters had dropped
        if report.get(f"new_{kind}_origin") and report[f"new_{kind}"]:
            print(f"  {report[f'new_{kind}_explained']}")
    if report["validation_users"]:
        print(f"held out for validation: {report['held_out']} interactions of {report['validation_users']} users")
        for key in ("ndcg@10", "recall@10"):
            print(f"  {key}: {_fmt(report['before'], key)} before -> {_fmt(report['after'], key)} after")
    else:
        print("no validation: no user has two or more new interactions (nothing could be held out)")
    print(f"result: {report['result']}; {report['trained_users']} users trained for up to {report['epochs']} "
          f"epochs in {report['seconds']:.1f}s")
    print(f"  {report['served']}")
    return 0


#: a seed on the command line: what the config's seeds take
SEED = Int(0, 0, 2**32 - 1)


def _update_arg(name: str):
    """``type=`` of an ``update`` option: checked against ``UPDATE_OPTIONS`` (imported when used)."""
    def parse(text: str):
        from .artifact.update import UPDATE_OPTIONS

        return option_arg(UPDATE_OPTIONS[name])(text)

    parse.__name__ = name
    return parse


def add_commands(sub) -> None:
    """Add the serving subcommands to the ``xdplug`` parser."""
    p = sub.add_parser("export", help="export a finished run as an artifact directory (weights, ID maps, config)")
    p.add_argument("config", help="the config the run was made with")
    p.add_argument("--method", required=True, help="the method's name, as in the report")
    p.add_argument("--seed", type=option_arg(SEED), help="which seed's run (default: the first finished one)")
    p.add_argument("-o", "--out", help="artifact directory (default: OUTPUT_DIR/artifacts/METHOD-SEED)")
    p.add_argument("--force", action="store_true", help="replace an existing artifact directory")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--json", action="store_true", help="print the export report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("recommend", help="top-K items from an exported artifact for a user or a new user's history")
    p.add_argument("artifact", help="an artifact directory written by `xdplug export` or `xdplug update`")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--user", help="a known target user's ID")
    who.add_argument("--history", metavar="FILE", help="a new user's item IDs, one per line")
    p.add_argument("-k", type=option_arg(Int(10, 1, 100_000)), default=10, help="how many items (default 10)")
    p.add_argument("--include-seen", action="store_true", help="also recommend items the user has seen")
    p.add_argument("--json", action="store_true", help="print a JSON list of {item, score, text}")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("update", help="fine-tune an exported strategy on new target interactions (new version)")
    p.add_argument("artifact", help="the artifact to start from (kept unchanged)")
    p.add_argument("interactions", help="CSV/TSV with a header user,item[,rating][,timestamp]")
    p.add_argument("--items", metavar="FILE", help="CSV/TSV of new items: item plus the text template's fields")
    p.add_argument("-o", "--out", help="new artifact directory (default: ARTIFACT.v2, .v3, ...)")
    p.add_argument("--epochs", type=_update_arg("epochs"), default=3, help="at most this many epochs (default 3)")
    p.add_argument("--holdout", type=_update_arg("holdout"), default=0.1,
                   help="fraction of each user's new interactions held out for validation (default 0.1)")
    p.add_argument("--learning-rate", type=_update_arg("learning_rate"), help="default: the strategy's learning rate")
    p.add_argument("--replay", type=_update_arg("replay"), default=1.0,
                   help="also train this many other users per user with new interactions (default 1.0)")
    p.add_argument("--seed", type=_update_arg("seed"), default=0,
                   help="seed of the held-out slice and the replay sample")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print the update report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_update)
