"""The ``xdplug`` command line. Errors users can fix become one message and exit status 2.

Exit status (:data:`EXIT_CODES`): 0 success; 1 ``xdplug run`` finished the grid and
wrote the report but some runs failed (listed on stderr after the report paths);
2 an error to fix (config, data, a read-only or full output folder or
``XDPLUG_HOME``, a run store in use by another run), one ``error: ...`` line;
130 interrupted (finished runs are kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from .version import __version__
from .cli_common import _load, _plugins, _table, option_arg
from .options import Int
from .errors import XdplugError

EXIT_CODES = """exit status:
  0    success
  1    `xdplug run` finished the grid and wrote the report, but some runs failed
       (each is listed on stderr after the report paths: method, seed, error)
  2    an error to fix: config, data, a read-only or full output folder or
       XDPLUG_HOME, a run store in use by another `xdplug run`, ...
  130  interrupted (finished runs are kept; run again to resume)"""


def cmd_plugins(args) -> int:
    rows = _plugins(args).plugin_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_table([[r["name"], r["version"] or "", ",".join(r["hooks"]), r["error"] or "ok"] for r in rows],
                 ["plugin", "version", "hooks", "status"]))
    return 0


def cmd_components(args) -> int:
    entries = _plugins(args).registry.all(args.kind)
    if args.json:
        print(json.dumps([{"name": e.name, "kind": e.kind, "plugin": e.plugin, "description": e.description}
                          for e in entries], indent=2))
        return 0
    print(_table([[e.kind, e.name, e.plugin, e.description] for e in entries],
                 ["kind", "name", "plugin", "description"]))
    return 0


def cmd_config_show(args) -> int:
    from .config import config_hash, dump_yaml
    from .controls import describe

    config = _load(args)
    print(f"# config hash: {config_hash(config)}")
    print(f"# {describe(config)}")  # the expansion itself is in baselines (entries marked control)
    print(dump_yaml(config), end="")
    return 0


def cmd_datasets(args) -> int:
    from .config import DEFAULTS
    from .data.prepare import cache_key
    from .paths import prepared_dir

    rows = []
    for entry in _plugins(args).registry.all("dataset"):
        recipe = entry.cls({})
        key = cache_key(entry.name, DEFAULTS["dataset"], recipe.params, DEFAULTS["seeds"][0])
        prepared = (prepared_dir() / f"{entry.name}-{key}" / "summary.json").is_file()
        rows.append([entry.name, "yes" if prepared else "no", recipe.origin(), entry.plugin])
    print(_table(rows, ["recipe", "prepared (default protocol)", "files come from", "plugin"]))
    return 0


def cmd_datasets_prepare(args) -> int:
    from .config import load_config
    from .data.prepare import prepare
    from .progress import progress_bar

    registry = _plugins(args).registry
    config = load_config(data={"dataset": {"recipe": args.name}, "baselines": [{"baseline": "Pop"}]},
                         overrides=args.set or [])
    recipe = registry.get("dataset", args.name, "recipe")(config["dataset"]["params"], "dataset.params")
    with progress_bar(3, f"prepare {args.name}", unit="step", disable=args.quiet) as bar:
        def step(message):
            bar.set_postfix_str(message)
            bar.update(1)
        data = prepare(recipe, config["dataset"], args.seed, force=args.force, progress=step)
        bar.n = bar.total
        bar.refresh()
    print(data.describe())
    print(f"prepared in {data.folder}")
    return 0


def executor_overrides(args) -> list[str]:
    """``--executor/--address/--workers`` as ``--set`` overrides, validated with the rest of the config."""
    out = []
    if args.executor or args.address:  # an address means Ray
        out.append(f"executor.kind={args.executor or 'ray'}")
    if args.address:
        out.append(f"executor.address={json.dumps(args.address)}")  # quoted: always a string
    if args.workers is not None:
        out.append(f"executor.workers={args.workers}")
    return out


def _verdict_text(paths: dict) -> str | None:
    """The verdict sentence of the report just written (report.json), if it has one."""
    try:
        return json.loads(paths["json"].read_text())["verdict"]["text"] or None
    except (KeyError, OSError, ValueError, TypeError):
        return None


def cmd_run(args) -> int:
    from .engine.runner import failed_runs, run_benchmark

    config = _load(args, executor_overrides(args))
    paths = run_benchmark(config, plugins=_plugins(args), force=args.force, progress=not args.quiet,
                          only=args.only, wait=args.wait)
    verdict = _verdict_text(paths)
    if verdict:  # the answer first, then where the details are
        print(f"verdict: {verdict}\n")
    print("report written:")
    for kind, path in paths.items():
        print(f"  {kind}: {path}")
    failed = failed_runs(config, only=args.only, registry=_plugins(args).registry)
    if not failed:
        return 0
    print(f"{len(failed)} run(s) failed (their tracebacks are in the report):", file=sys.stderr)
    for run in failed:
        error = (run["error"] or "").strip().splitlines()
        print(f"  {run['method']} seed {run['seed']}: {error[0] if error else 'no error recorded'}", file=sys.stderr)
    return 1


def cmd_report(args) -> int:
    from .config import store_path
    from .report.collect import build_report
    from .store import RunStore

    config = _load(args)
    path = store_path(config)
    if not path.exists():  # a directory in its place is RunStore's named error
        raise XdplugError(f"no run store at {path}; run `xdplug run {args.config}` first")
    store = RunStore(path)
    plugins = _plugins(args)
    paths = build_report(config, store, plugins.registry)
    store.close()
    plugins.notify_report_written(paths, config)
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xdplug", description=(
        "Cross-domain recommendation benchmarks: does transfer from a source domain beat classic CF?"),
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"xdplug {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list plugins, their hooks and load errors")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("components", help="list registered components")
    p.add_argument("--kind", choices=["encoder", "fusion", "adaptation", "family", "evaluator", "baseline", "dataset"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_components)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    q = csub.add_parser("show", help="print the resolved, validated config and its hash")
    q.add_argument("config")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
    q.set_defaults(func=cmd_config_show)

    p = sub.add_parser("datasets", help="list dataset recipes; `datasets prepare NAME` prepares one")
    p.set_defaults(func=cmd_datasets)
    dsub = p.add_subparsers(dest="datasets_command")
    q = dsub.add_parser("prepare", help="prepare a recipe (filter, align, split) and print its summary")
    q.add_argument("name")
    q.add_argument("--seed", type=option_arg(Int(2022, 0, 2**32 - 1)), default=2022,
                   help="the seed of the split (default 2022)")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help="override e.g. dataset.sparse.keep=0.2")
    q.add_argument("--force", action="store_true", help="prepare again even if cached")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_datasets_prepare)

    p = sub.add_parser("run", help="run a benchmark config and write its report", epilog=EXIT_CODES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--force", action="store_true", help="rerun runs that already finished")
    p.add_argument("--only", action="append", metavar="METHOD", help="run only this method (repeatable)")
    p.add_argument("--executor", choices=["local", "ray"], help="where runs execute (default: executor.kind)")
    p.add_argument("--address", metavar="auto|HOST:PORT",
                   help="join this Ray cluster (implies --executor ray); without it Ray starts locally")
    p.add_argument("--workers", type=option_arg(Int(None, 0, 100_000)), metavar="N",
                   help="CPUs of the local Ray instance (0: all cores), or most runs at once on a cluster")
    p.add_argument("--wait", action="store_true",
                   help="if another `xdplug run` holds this output's run store, wait for it instead of refusing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    from .cli_artifacts import add_commands

    add_commands(sub)
    from .serve.command import add_command as add_serve_command

    add_serve_command(sub)

    p = sub.add_parser("report", help="(re)write the report of a config from its run store")
    p.add_argument("config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None, plugins=None) -> int:
    """Run one command; ``plugins`` (a :class:`xdplug.plugins.Plugins`) is the manager whose components it
    sees, by default one loaded from the installed plugins when the command first needs it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.plugins = plugins
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*GradScaler.*")
    try:
        return args.func(args) or 0
    except XdplugError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `xdplug plugins --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted; finished runs are kept, `xdplug run` resumes the rest", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
