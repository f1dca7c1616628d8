"""The ``optbench`` command line: plugins, fields, validate, schema, run, report, publish, compare, export."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import OptbenchError

EXIT_OK, EXIT_CELLS_FAILED, EXIT_USAGE = 0, 1, 2


def _pm() -> Any:
    from harness.registry.manager import PluginManager

    return PluginManager.load()


def _param_line(p: dict[str, Any]) -> str:
    text = f"{p['name']}: {p['type']}"
    text += " (required)" if p["required"] else f" = {json.dumps(p['default'])}"
    if p["bounds"]:
        marks = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        text += "  [" + ", ".join(f"{marks[k]} {v}" for k, v in p["bounds"].items()) + "]"
    if p["description"]:
        text += f"  {p['description']}"
    return text


def cmd_plugins(args: argparse.Namespace) -> int:
    pm = _pm()
    described = pm.describe()
    if args.json:
        print(json.dumps(described, indent=2))
        return EXIT_OK
    for plugin in described:
        head = f"{plugin['distribution']} {plugin['version']}  (plugin {plugin['plugin']!r}, {plugin['module']})"
        if plugin["error"]:
            print(f"BROKEN {head}\n    {plugin['error'].strip().splitlines()[0]}")
            continue
        print(head)
        for obj in plugin["registers"]:
            print(f"  {obj['type']:<8} {obj['name']:<24} [{obj['kind']}] {obj['description']}")
            if obj.get("training_defaults"):
                shown = ", ".join(f"{k} {v}" for k, v in obj["training_defaults"].items())
                print(f"      (trained by the harness with its defaults for what the params lack: {shown})")
            for p in obj["params"]:
                print(f"      {_param_line(p)}")
        if plugin.get("fields"):
            names = ", ".join(f["name"] for f in plugin["fields"])
            print(f"  fields   {len(plugin['fields'])} record fields ({names}); `optbench fields` says what each is")
    if pm.broken:
        print(f"\n{len(pm.broken)} plugin(s) failed to load; the others are usable.", file=sys.stderr)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.run.runner import plan

    suite, cells = plan(Path(args.suite), _pm())
    per = {k: len({getattr(c, k).label for c in cells}) for k in ("model", "dataset", "method", "backend")}
    seeds = suite.seed_list
    print(
        f"{args.suite}: valid. {len(cells)} cells ({per['model']} models x {per['dataset']} datasets x "
        f"{per['method']} methods incl. baseline x {per['backend']} backends"
        + (f" x {len(seeds)} seeds" if len(seeds) > 1 else "") + ", as paired), "
        f"{sum(len(c.points) for c in cells)} records (one per cell x batch size"
        + (" x prompt length for generation)" if any(c.prompt_tokens for c in cells) else ")")
    )
    if not args.quiet:
        for c in cells:
            print(f"  {c.cell_id}  {c.label}" + (f"  seed {c.seed}" if len(seeds) > 1 else ""))
    return EXIT_OK


def cmd_fields(args: argparse.Namespace) -> int:
    from harness.results.field_reference import reference_markdown, reference_text

    schema = _pm().registry.schema
    sys.stdout.write(reference_markdown(schema) if args.markdown else reference_text(schema))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from harness.suite.json_schema import suite_schema

    print(json.dumps(suite_schema(_pm().registry), indent=2))
    return EXIT_OK


def _print_summary(args: argparse.Namespace, run_dir: Path) -> None:
    """The summary table of a run (harness.report.terminal_summary) on stdout. The run and its report
    are done by then: a table that cannot be drawn is said on stderr, and the report's path still follows."""
    from harness.report.terminal_summary import print_summary
    from harness.results.labels import printable

    sys.stdout.flush()
    try:
        print_summary(run_dir)
    except BrokenPipeError:
        raise
    except Exception as exc:  # see above; --debug shows it
        if args.debug:
            raise
        print(f"optbench: no summary table ({type(exc).__name__}: {printable(exc)})", file=sys.stderr)


@contextlib.contextmanager
def _first_ctrl_c_only() -> Iterator[None]:
    """The first Ctrl-C stops the run (KeyboardInterrupt, as usual); from that moment every further
    one is ignored until the process is gone. Pressed twice 0.2 s apart, the second had landed while
    the killed cell was being reaped (leaving its processes running) or while Python finalised
    (killing the command by SIGINT instead of exit 130). Only where Python's own handler is in place."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def first(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    interrupted = False
    try:
        yield
    except BaseException:
        interrupted = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        raise
    finally:
        if not interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.run.progress import make_progress
    from harness.run.runner import Runner

    if args.suite is None and args.resume is None:
        raise OptbenchError("run: give a SUITE file, or --resume RUN_DIR")
    if args.suite is not None and args.resume is not None:
        raise OptbenchError("run: --resume RUN_DIR reruns the run's own suite.yaml; drop SUITE")
    progress = make_progress(args.quiet)
    with _first_ctrl_c_only():
        result = Runner(_pm(), progress).run(
            Path(args.suite) if args.suite else None, Path(args.results), Path(args.resume) if args.resume else None
        )
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items() if v)
    if not args.quiet:
        print(f"cells: {counts or 'none to run'}", file=sys.stderr)
    if not (args.quiet or args.no_summary):
        _print_summary(args, result.run_dir)
    print(result.report)  # always the last line: scripts read the report's path from it
    return result.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.run_report import write_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "records.jsonl").exists():
        raise OptbenchError(f"{run_dir}: not a run directory (no records.jsonl in it)")
    report = write_report(run_dir)
    if args.summary:
        _print_summary(args, run_dir)
    print(report)
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from harness.site.publish import cmd_publish as run

    return run(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.results.compare import cmd_compare as run

    return run(args)


def cmd_export(args: argparse.Namespace) -> int:
    from harness.results.export import cmd_export as run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show Python tracebacks")
    parser = argparse.ArgumentParser(
        prog="optbench", parents=[common],
        description="Benchmark neural-network optimization methods: latency, memory and accuracy.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", parents=[common], help="list installed plugins and what they register")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("validate", parents=[common], help="check a suite without running it")
    p.add_argument("suite", metavar="SUITE")
    p.add_argument("-q", "--quiet", action="store_true", help="only the summary line")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("fields", parents=[common],
                       help="every record field: type, unit and meaning (the harness's and the installed plugins')")
    p.add_argument("--markdown", action="store_true", help="as the tables of the docs' records page")
    p.set_defaults(func=cmd_fields)

    p = sub.add_parser("schema", parents=[common], help="print the suite JSON Schema, installed plugins included")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", parents=[common], help="run a suite")
    p.add_argument("suite", metavar="SUITE", nargs="?")
    p.add_argument("--results", default="results", metavar="DIR", help="results root (default: ./results)")
    p.add_argument("--resume", metavar="RUN_DIR", help="run only the cells of RUN_DIR without an ok record")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress output and no summary table: only the report's path")
    p.add_argument("--no-summary", action="store_true",
                   help="no summary table at the end (progress is still shown)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", parents=[common], help="rebuild a run's report.html")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--summary", action="store_true",
                   help="also print the summary table that `optbench run` ends with")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("publish", parents=[common], help="build a static leaderboard site from every run under a folder")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--out", required=True, metavar="SITE_DIR", help="folder the site is written to")
    p.add_argument("--plotly", choices=("inline", "cdn"), default="inline",
                   help="inline plotly.js in every page (default: works offline) or load it from a CDN")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("compare", parents=[common],
                       help="compare two runs cell by cell: faster, slower or unchanged (size and significance)")
    p.add_argument("base_run", metavar="BASE_RUN")
    p.add_argument("new_run", metavar="NEW_RUN")
    p.add_argument("--threshold", type=float, default=0.05, metavar="FRACTION",
                   help="smallest relative change in latency that counts (default 0.05)")
    p.add_argument("--fail-on", choices=("regression", "never"), default="never",
                   help="exit 1 when a regression is found (default: never)")
    p.add_argument("--markdown", action="store_true", help="a markdown table (for a pull-request comment)")
    p.add_argument("--allow-different-machines", action="store_true",
                   help="compare runs made on different machines (the output says so)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", parents=[common], help="a run's records as csv, parquet or markdown")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", choices=("csv", "parquet", "markdown"), default="csv")
    p.add_argument("-o", "--out", metavar="FILE", help="write here (default: stdout; parquet: RUN_DIR/records.parquet)")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except OptbenchError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"optbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("optbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``optbench plugins | head``): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not raise again
        return EXIT_OK
