"""The ``churnwatch`` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kafka.errors import KafkaError

from ..core.policy import PolicyError, load_policy, policy_toml
from ..core.settings import ConfigError, env_name, from_env
from ..kafka.admin import TOOL_TIMEOUT, AdminError

if TYPE_CHECKING:
    from ..core.settings import Settings
    from ..offline.mapping import Loaded
    from ..offline.progress import Progress

DESCRIPTION = """\
Real-time churn signals from customer event streams.

Reads the purchases, contacts and complaints topics, keeps a compact state per
customer, and emits explained churn alerts (who, why, what to do) to the
churn-alerts topic.  Configuration comes from CHURNWATCH_* environment
variables and an optional policy file (CHURNWATCH_POLICY_FILE); see README.md.
"""

EPILOG = """\
examples:
  churnwatch demo                      the whole system on this machine, no setup
  churnwatch demo --customers 500      a smaller, quicker demo
  churnwatch demo --serve              then keep it running and open the console
  CHURNWATCH_BROKER_URL=kafka://k1:9092 churnwatch worker
  churnwatch explain C000123             why is this customer at risk?
  churnwatch console                     the call centre's queue, on http://127.0.0.1:8066/
  churnwatch policy check policy.toml
  churnwatch config                      the settings in effect, and where each comes from
  churnwatch dead-letters list           what the worker refused, and why
  churnwatch sink webhook https://crm.example.com/hooks/churn   alerts to an HTTP endpoint
  churnwatch replay --purchases sales.csv --map customer_id=cust,ts=date,amount=spend
  churnwatch evaluate --dataset cdnow    would it have caught the customers we lost?
"""


def version() -> str:
    """The installed distribution's version (the package's own when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    from .. import __version__

    try:
        return dist_version("churnwatch")
    except PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="churnwatch", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = sub.add_parser("demo", help="run the demo: local broker, a worker, synthetic customers",
                       description="Start the embedded broker and a worker, stream a "
                       "synthetic customer population through them, show the alerts as "
                       "they arrive and a summary scored against the known outcomes.")
    d.add_argument("--customers", type=int, default=2000, help="population size (2000)")
    d.add_argument("--days", type=int, default=540,
                   help="simulated days of history (540: a year of baseline, then drift)")
    d.add_argument("--seed", type=int, default=7, help="random seed (7)")
    d.add_argument("--quiet", action="store_true", help="show progress and summary only")
    d.add_argument("--serve", action="store_true",
                   help="keep the broker and worker running after the summary, start the "
                        "console and print its address (Ctrl-C stops them all)")

    w = sub.add_parser("worker", help="run one stream-processing worker (production)",
                       description="Run one Faust worker against CHURNWATCH_BROKER_URL. "
                       "Run as many as the topics have partitions; SIGTERM stops it "
                       "gracefully.")
    w.add_argument("--no-create-topics", action="store_true",
                   help="don't create missing topics at start-up")

    b = sub.add_parser("broker", help="run the embedded local broker in the foreground",
                       description="Run the embedded Kafka-compatible broker (in-memory, "
                       "for development) until Ctrl-C.")
    b.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (9092)")

    tp = sub.add_parser("topics", help="create every topic the worker needs, or list them",
                        description="Create the input, output and internal topics with "
                        "CHURNWATCH_PARTITIONS partitions (existing ones are checked), or "
                        "with --list / --describe show what the broker has.")
    show = tp.add_mutually_exclusive_group()
    show.add_argument("--list", action="store_true",
                      help="every topic on the broker with its partitions, and churnwatch's "
                      "own (marked with their role; missing ones too); creates nothing")
    show.add_argument("--describe", action="store_true",
                      help="churnwatch's topics partition by partition (leader, replicas, "
                      "in-sync replicas) and the settings the broker reports; creates nothing")
    tp.add_argument("--json", action="store_true", help="with --list/--describe: as JSON")
    tp.add_argument("--wait", type=float, metavar="SECONDS",
                    help=f"how long to wait for the broker to answer ({TOOL_TIMEOUT:g}); "
                    "more for a script that starts with the cluster")

    cfg = sub.add_parser("config", help="the effective settings and where each comes from",
                         description="Every CHURNWATCH_* setting in effect, its source "
                         "(env or default) and its default; passwords and tokens are "
                         "masked.  Fails, naming the variable, when a setting is invalid.")
    cfg.add_argument("--json", action="store_true", help="as a JSON array")

    ex = sub.add_parser("explain", help="a customer's current state, signals, score, actions",
                        description="Read the customer's latest state from the state "
                        "table's changelog on CHURNWATCH_BROKER_URL (no worker needed) and "
                        "score it with the policy at the customer's latest event time.")
    ex.add_argument("customer_id")
    ex.add_argument("--at", help="judge at this time instead (ISO-8601 with offset)")

    pol = sub.add_parser("policy", help="policy file tools")
    polsub = pol.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    chk = polsub.add_parser("check", help="validate a policy file and print the result")
    chk.add_argument("file", nargs="?",
                     help="the policy file (default: $CHURNWATCH_POLICY_FILE)")
    polsub.add_parser("defaults", help="print the default policy as a TOML file to start "
                      "from, each key with its documentation")
    con = sub.add_parser("console", help="the call centre's queue and customer cards (web)",
                         description="Serve the alert queue, customer cards and outcome "
                         "buttons, and the cluster-wide GET /alerts and POST /feedback API, "
                         "from the churn-alerts and feedback topics on CHURNWATCH_BROKER_URL. "
                         "Needs CHURNWATCH_API_TOKEN (a token is made up for the run if unset).")
    con.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    con.add_argument("--port", type=int, default=8066, help="port (8066)")
    con.add_argument("--worker-url", metavar="URL",
                     help="a worker's web server, for customer look-ups (default: "
                     "CHURNWATCH_WEB_CANONICAL_URL, else http://WEB_HOST:WEB_PORT)")
    from .deadletters import add_parser as add_dead_letters

    add_dead_letters(sub)
    from .sink.command import add_parser as add_sink

    add_sink(sub)
    comp = sub.add_parser("completion", help="print a bash completion script",
                          description="Print tab completion for bash (and zsh after "
                          "'autoload -U bashcompinit && bashcompinit') of every command, "
                          "action and option.  Load it from your shell's start-up file: "
                          "eval \"$(churnwatch completion bash)\"")
    comp.add_argument("shell", choices=("bash",))
    _add_history_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ConfigError, PolicyError) as exc:
        print(f"churnwatch: configuration error: {exc}", file=sys.stderr)
        return 2
    except AdminError as exc:
        print(f"churnwatch: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        print(f"churnwatch: cannot talk to the broker ({exc}); check CHURNWATCH_BROKER_URL "
              "and that the broker is running", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nchurnwatch: interrupted; everything it started has been stopped.",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "policy":
        if args.policy_command == "defaults":
            print(policy_toml(load_policy(None), documented=True), end="")
            return 0
        path = args.file or os.environ.get(env_name("policy_file"), "")
        if not path:
            print(f"churnwatch policy check: give a policy file, or set "
                  f"{env_name('policy_file')}", file=sys.stderr)
            return 2
        policy = load_policy(path)
        print(f"# {path}: OK. In effect (defaults filled in):")
        print(policy_toml(policy), end="")
        return 0
    if args.command == "completion":
        print(completion_script(build_parser()), end="")
        return 0
    if args.command == "sink":  # its CHURNWATCH_SINK_* variables are its own
        from .sink.command import core_environ
        from .sink.command import run as run_sink

        return run_sink(args, from_env(core_environ(os.environ)))
    settings = from_env()
    if args.command == "config":
        return _show_config(settings, args.json)
    settings.policy()  # fail now, naming the key, not inside the worker
    if args.command == "demo":
        from ..offline.demo import run_demo

        # Ctrl-C (even where a shell started us with SIGINT ignored) and
        # SIGTERM both unwind the demo, which stops the worker and broker.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        return run_demo(settings, args.customers, args.days, args.seed, args.quiet,
                        serve=args.serve)
    if args.command == "console":
        from .console.server import run_console

        return run_console(settings, args.host, args.port,
                           args.worker_url or settings.canonical_url)
    if args.command == "worker":
        from .worker import run_worker

        run_worker(create_topics=not args.no_create_topics, settings=settings)
        return 0
    if args.command == "broker":
        from ..kafka.broker import serve

        return serve(args.port)
    if args.command == "explain":
        from .explain import describe, latest_state, parse_at

        try:
            at = parse_at(args.at) if args.at else None
        except ValueError as exc:
            # Python's own message ("Invalid isoformat string") names no format.
            why = str(exc) if str(exc).startswith("--at") else (
                f"--at {args.at!r}: expected an ISO-8601 time with a UTC offset, e.g. "
                "2025-06-01T00:00:00Z or 2025-06-01T09:30:00+03:00")
            print(f"churnwatch: {why}", file=sys.stderr)
            return 2
        try:
            state = latest_state(settings, args.customer_id)
        except ValueError as exc:  # a state this release cannot read
            print(f"churnwatch: {exc}", file=sys.stderr)
            return 1
        if state is None:
            print(f"churnwatch: no state for customer {args.customer_id!r} on "
                  f"{settings.broker_url} (topic {settings.state_changelog_topic})",
                  file=sys.stderr)
            return 1
        print(describe(state, settings.policy(), at))
        return 0
    if args.command in ("replay", "evaluate"):
        return _run_history(args, settings)
    if args.command == "topics":
        return _topics(args, settings)
    if args.command == "dead-letters":
        from .deadletters import run

        return run(args, settings)
    raise AssertionError(args.command)


def completion_script(parser: argparse.ArgumentParser) -> str:
    """Bash completion generated from the parser, so it cannot fall behind it.

    argparse has none of its own, and the libraries that add it would be a
    dependency for a few lines: at each word, the commands or actions of the
    command typed so far, its options after a '-', file names otherwise.
    """
    table: dict[str, tuple[list[str], list[str]]] = {}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        subs: list[str] = []
        opts = [o for a in p._actions for o in a.option_strings if o.startswith("--")]
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    subs.append(name)
                    walk(child, f"{path} {name}")
            elif not a.option_strings and a.choices:
                subs.extend(str(c) for c in a.choices)
        table[path] = (subs, opts)

    walk(parser, "")
    paths = "|".join(f'"{p}"' for p in table if p)
    cases = "\n".join(f'    "{p}") subs="{" ".join(s)}"; opts="{" ".join(o)}" ;;'
                      for p, (s, o) in table.items())
    return f"""_churnwatch() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" subs="" opts="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "$path ${{COMP_WORDS[i]}}" in
      {paths}) path="$path ${{COMP_WORDS[i]}}" ;;
    esac
  done
  case "$path" in
{cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ -n "$subs" ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -o filenames -F _churnwatch churnwatch
"""


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from ..kafka import admin

    wait = admin.TOOL_TIMEOUT if args.wait is None else args.wait
    if wait <= 0:
        print("churnwatch topics: --wait must be a positive number of seconds", file=sys.stderr)
        return 2
    if not (args.list or args.describe):
        if args.json:
            print("churnwatch topics: --json goes with --list or --describe", file=sys.stderr)
            return 2
        created = admin.create_topics(settings, timeout=wait)
        print("created: " + (", ".join(created) if created else "nothing (all exist)"))
        return 0
    topics = admin.list_topics(settings, wait, describe=args.describe)
    if args.describe:  # churnwatch's own; the rest of a shared cluster is not ours
        topics = [t for t in topics if t.role]
    if args.json:
        import orjson

        rows = [{"name": t.name, "role": t.role or None, "partitions": t.partitions,
                 **({"layout": list(t.layout), "configs": t.configs} if args.describe else {})}
                for t in topics]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    width = max(len(t.name) for t in topics)
    for t in topics:
        count = f"{t.partitions} partitions" if t.partitions else "missing"
        mismatch = (" (CHURNWATCH_PARTITIONS=" + str(settings.partitions) + ")"
                    if t.role and t.partitions and t.partitions != settings.partitions else "")
        print(f"{t.name:<{width}}  {count}{mismatch}" + (f"  [{t.role}]" if t.role else ""))
        if not args.describe or not t.partitions:
            continue
        for p in t.layout:
            offline = f" offline {p['offline']}" if p["offline"] else ""
            print(f"  partition {p['partition']}: leader {p['leader']}, replicas "
                  f"{p['replicas']}, in sync {p['isr']}{offline}")
        print("  settings changed from the broker's defaults: " + (
            ", ".join(f"{k}={v}" for k, v in sorted(t.configs.items())) if t.configs
            else "none reported"))
    missing = [t.name for t in topics if t.role and not t.partitions]
    if missing:
        print(f"missing: {', '.join(missing)} (churnwatch topics creates them)")
    return 0


def _show_config(settings: Settings, as_json: bool) -> int:
    from ..core.settings import describe_settings

    rows = describe_settings(settings, os.environ)
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    def text(value: object) -> str:
        return "(none)" if value == "" else str(value)

    width = max(len(r["name"]) for r in rows)
    values = max(len(text(r["value"])) for r in rows)
    for r in rows:
        note = "" if r["source"] == "default" else f" (default {text(r['default'])})"
        print(f"{r['name']:<{width}}  {text(r['value']):<{values}}  {r['source']}{note}")
    return 0


# -- replay and evaluate: historical data through the pipeline -------------

HISTORY_INPUTS = """\
inputs: CSV (comma, tab, semicolon or pipe; detected from the header and the
first rows, or --delimiter), with amounts in a decimal point or comma (detected
per file, or --decimal; an amount that could be either is refused),
whitespace-separated text, or JSON Lines (.jsonl/.ndjson/.json), one or more
files per topic; text files start with a header line naming the columns.
Columns or JSON keys named like our schema fields (schemas/*.json) need no
mapping; others are mapped with --map.  A missing event_id is derived from
file name and line number (FILE:LINE), so a second replay sends the same ids.
Every mapped row is validated with the worker's own rules; rows that fail are
listed as FILE:LINE with the reason and are not sent.  Files are read into
memory, sorted by event time if they are not (the report says so), and merged
in event-time order.
"""


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, 78)


def _add_inputs(p: argparse.ArgumentParser) -> None:
    from ..offline.datasets import NAMES

    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=NAMES,
                   help="a ready-made data set instead of files: cdnow (the CDNOW "
                   "transaction log, needs churnwatch[eval]) or synthetic (the demo's "
                   "generated population)")
    for kind in ("purchases", "contacts", "complaints"):
        g.add_argument(f"--{kind}", action="append", default=[], metavar="FILE",
                       help=f"a file of {kind} (may be repeated)")
    g.add_argument("--map", metavar="FIELD=COLUMN,...",
                   help="columns for our fields, e.g. customer_id=cust,ts=date,amount=spend")
    g.add_argument("--set", metavar="FIELD=VALUE,...",
                   help="a constant for every row, e.g. channel=store or direction=outbound")
    g.add_argument("--date-format", metavar="FORMAT",
                   help="strptime format of the ts column (e.g. %%Y%%m%%d or "
                   "'%%d/%%m/%%Y %%H:%%M'), or epoch / epoch_ms; default ISO-8601")
    g.add_argument("--tz", default="UTC",
                   help="zone of times without an offset: UTC, +02:00 or a zone name (UTC)")
    g.add_argument("--delimiter", choices=("comma", "tab", "semicolon", "pipe", "whitespace"),
                   help="column separator of text files (detected from the header and "
                   "the first rows)")
    g.add_argument("--decimal", metavar="MARK",
                   help="decimal mark of amounts in text files: , (12,50) or . (12.50); "
                   "default detected per file, ambiguous amounts refused")
    g.add_argument("--sample", type=float, metavar="FRACTION",
                   help="keep this share of customers (chosen by a hash of the id: the "
                   "same customers every run), e.g. 0.1")
    g.add_argument("--customers", type=int, default=2000,
                   help="synthetic: population size (2000)")
    g.add_argument("--days", type=int, default=540, help="synthetic: days of history (540)")
    g.add_argument("--seed", type=int, default=7, help="synthetic: random seed (7)")


def _add_history_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    r = sub.add_parser(
        "replay", help="send historical events from files into the topics, in event-time order",
        formatter_class=fmt,
        description=_wrap("Send historical purchases, contacts and complaints from files into the "
        "topics on CHURNWATCH_BROKER_URL, in event-time order, keyed by customer id, as fast "
        "as the broker takes them or time-compressed (--speed).  The worker judges windows "
        "and silence by the events' own time, so the alerts are those living through the "
        "history would have raised.") + "\n\n" + HISTORY_INPUTS,
        epilog="examples:\n"
        "  churnwatch replay --purchases sales.csv --map customer_id=cust,ts=date,amount=spend "
        "--date-format %Y%m%d\n"
        "  churnwatch replay --purchases p.jsonl --complaints k.jsonl --speed 3600\n"
        "  churnwatch replay --dataset cdnow --dry-run      map and validate only")
    _add_inputs(r)
    r.add_argument("--speed", type=float, metavar="N",
                   help="event-time seconds per wall-clock second (3600: an hour a second); "
                   "default as fast as possible")
    r.add_argument("--since", metavar="DATE", help="send only events from this time on")
    r.add_argument("--until", metavar="DATE", help="send only events up to this time "
                   "(a date means the end of that day)")
    r.add_argument("--dry-run", action="store_true",
                   help="map, validate and order the files and report; send nothing")
    r.add_argument("--broker-url", metavar="URL", help="send to this broker instead of "
                   "CHURNWATCH_BROKER_URL, with the same TLS and SASL settings")

    e = sub.add_parser(
        "evaluate", help="would it have caught the customers we lost, and how early?",
        formatter_class=fmt,
        description=_wrap("Replay the history before --cutoff through a broker and a worker "
        "(the embedded broker unless --broker-url), score every customer's state at the "
        "cutoff, collect the alerts, label each customer by the purchases after the "
        "cutoff (none within --horizon days = churned; customers whose first purchase is "
        "after the cutoff are left out), and report, for all customers and for repeat "
        "buyers (2+ purchases), AUC and precision in the riskiest 1%/10%/20% beside three "
        "baselines on the same split: recency (days since the last purchase), frequency "
        "(fewer purchases = riskier) and Pareto/NBD fitted offline (fewer expected "
        "purchases in the horizon = riskier); the calibration of the risk read as "
        "P(no purchase in the next H days), H the policy's [model].horizon_days (90), "
        "against what happened in those H days (Brier score, expected calibration error "
        "over 10 equal-width bins, a reliability table); the alerts' precision and recall "
        "(alerted = an alert in the --lookback days before the cutoff), alerts per 1,000 "
        "customers per month and the median lead time; and the risk threshold that fits "
        "--budget alerts per 1,000 customers per month, with its precision.  "
        "Check a result on more than one split: --cutoff and --horizon move it.")
        + "\n\n" + HISTORY_INPUTS,
        epilog="examples:\n"
        "  churnwatch evaluate --dataset cdnow               cutoff 1997-09-30, horizon 180\n"
        "  churnwatch evaluate --dataset cdnow --cutoff 1997-06-30 --horizon 273   another split\n"
        "  churnwatch evaluate --dataset synthetic --customers 500 --plot precision.png\n"
        "  churnwatch evaluate --purchases sales.csv --map customer_id=cust,ts=date,"
        "amount=spend \\\n      --cutoff 2024-06-30 --horizon 90 --json report.json")
    _add_inputs(e)
    e.add_argument("--cutoff", metavar="DATE",
                   help="judge at this time (a date means the end of that day, UTC); "
                   "default the data set's own (cdnow 1997-09-30)")
    e.add_argument("--horizon", type=float, metavar="DAYS",
                   help="no purchase within this many days after the cutoff = churned "
                   "(cdnow 180, synthetic 90)")
    e.add_argument("--lookback", type=float, default=90.0, metavar="DAYS",
                   help="an alert counts when raised this many days before the cutoff (90)")
    e.add_argument("--budget", type=float, default=100.0, metavar="N",
                   help="alerts per 1,000 customers per month the team can act on: the "
                   "report suggests the risk threshold that fits it (100)")
    e.add_argument("--broker-url", metavar="URL",
                   help="use this broker (topics and group of the run's own) instead of "
                   "starting the embedded one; a worker is started either way")
    e.add_argument("--format", choices=("table", "json"), default="table",
                   help="what goes to standard output (table)")
    e.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    e.add_argument("--plot", metavar="FILE.png",
                   help="draw precision against the share of customers contacted "
                   "(needs churnwatch[eval])")


def _run_history(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile
    import zlib
    from pathlib import Path

    from ..offline import datasets, mapping
    from ..offline.evaluate import EvaluationError, parse_cutoff
    from ..offline.progress import Progress

    def fail(message: str, code: int = 2) -> int:
        print(f"churnwatch {args.command}: {message}", file=sys.stderr)
        return code

    files = [(k, f) for k in mapping.KINDS for f in getattr(args, k)]
    if bool(files) == bool(args.dataset):
        return fail("give either --dataset or files (--purchases FILE ...), not both "
                    "or neither")
    try:
        if args.dataset == "cdnow":
            ds = datasets.cdnow()
        elif args.dataset == "synthetic":
            folder = Path(tempfile.mkdtemp(prefix="churnwatch-synthetic-"))
            ds = datasets.synthetic(folder, args.customers, args.days, args.seed)
        else:
            ds = datasets.Dataset("files", [mapping.Source(k, Path(f)) for k, f in files])
        m = ds.mapping
        if (args.map or args.set or args.date_format or args.delimiter or args.decimal
                or args.tz != "UTC"):
            m = mapping.Mapping(
                columns={**m.columns, **mapping.parse_pairs(args.map, "--map")},
                constants={**m.constants, **mapping.parse_pairs(args.set, "--set")},
                date_format=args.date_format or m.date_format,
                tz=mapping.parse_tz(args.tz) if args.tz != "UTC" else m.tz,
                delimiter=args.delimiter or m.delimiter,
                decimal=mapping.parse_decimal(args.decimal) or m.decimal)
        keep = None
        if args.sample is not None:
            if not 0 < args.sample <= 1:
                return fail(f"--sample {args.sample}: give a share between 0 and 1, e.g. 0.1")
            limit = int(args.sample * 2**32)

            def keep(cid: str) -> bool:
                return zlib.crc32(cid.encode()) < limit

        progress = Progress(sys.stderr)
        print(f"Reading {ds.note or ', '.join(str(s.path) for s in ds.sources)}...",
              file=sys.stderr)
        loaded = mapping.load(ds.sources, m, keep)
        for line in mapping.describe_reports(loaded):
            print(line, file=sys.stderr)
        if not loaded.events:
            return fail("no event could be mapped; see the rows above and fix --map, "
                        "--date-format or --tz", 1)
        if args.command == "replay":
            return _replay(args, settings, loaded, progress)
        cutoff = parse_cutoff(args.cutoff) if args.cutoff else (
            ds.cutoff.timestamp() if ds.cutoff else None)
        horizon = args.horizon if args.horizon is not None else ds.horizon_days
        if cutoff is None or horizon is None:
            return fail("give --cutoff DATE and --horizon DAYS for your own files")
        if horizon <= 0 or args.lookback <= 0:
            return fail("--horizon and --lookback must be positive numbers of days")
        if not 0 < args.budget <= 1000:
            return fail(f"--budget {args.budget:g}: give alerts per 1,000 customers per "
                        "month, more than 0 and at most 1000, e.g. 100")
        return _evaluate(args, settings, loaded, cutoff, horizon, progress, ds.name)
    except (mapping.MappingError, EvaluationError) as exc:
        return fail(str(exc), 1 if isinstance(exc, EvaluationError) else 2)
    except ValueError as exc:
        return fail(f"{exc}; dates look like 2025-06-30 or 2025-06-30T12:00:00+02:00")


def _replay(args: argparse.Namespace, settings: Settings, loaded: Loaded,
            progress: Progress) -> int:
    from ..offline.evaluate import parse_cutoff
    from ..offline.replay import send

    events = loaded.events
    if args.since:
        since = parse_cutoff(args.since, end_of_day=False)
        events = [e for e in events if e.ts >= since]
    if args.until:
        until = parse_cutoff(args.until)
        events = [e for e in events if e.ts <= until]
    if not events:
        print("churnwatch replay: no events in the chosen time range", file=sys.stderr)
        return 1
    first = time.strftime("%Y-%m-%d", time.gmtime(events[0].ts))
    last = time.strftime("%Y-%m-%d", time.gmtime(events[-1].ts))
    if args.dry_run:
        print(f"dry run: {len(events):,} events from {first} to {last} would be sent; "
              "nothing was sent")
        return 0
    if args.speed is not None and args.speed <= 0:
        print("churnwatch replay: --speed must be positive (3600 = an hour a second)",
              file=sys.stderr)
        return 2
    from ..kafka.admin import TOOL_TIMEOUT, create_topics

    if args.broker_url:
        settings = settings.with_overrides(broker_url=args.broker_url)
    create_topics(settings, timeout=TOOL_TIMEOUT)
    sent = send(settings, events, len(events), progress, args.speed)
    progress.clear()
    print(f"sent {sent.events:,} events ({first} to {last}) to {settings.broker_url} in "
          f"{sent.seconds:.1f} s ({sent.events / max(sent.seconds, 1e-6):,.0f}/s)")
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings, loaded: Loaded,
              cutoff: float, horizon: float, progress: Progress, name: str) -> int:
    from pathlib import Path

    import orjson

    from ..offline.evaluate import plot, run, table

    report = run(settings, loaded, cutoff, horizon, args.lookback, args.broker_url,
                 sys.stderr, progress, args.budget)
    report["dataset"] = name
    raw = orjson.dumps(report, option=orjson.OPT_INDENT_2)
    if args.json:
        Path(args.json).write_bytes(raw + b"\n")
    if args.plot:
        plot(report, Path(args.plot), name)
    if args.format == "json":
        sys.stdout.write(raw.decode() + "\n")
    else:
        print(table(report, name))
        for what, where in (("JSON", args.json), ("plot", args.plot)):
            if where:
                print(f"{what}: {where}")
    return 0
