"""The ``churnwatch`` command line."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence

from kafka.errors import KafkaError

from .policy import PolicyError, load_policy, policy_toml
from .settings import ConfigError, from_env

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
  CHURNWATCH_BROKER_URL=kafka://k1:9092 churnwatch worker
  churnwatch explain C000123             why is this customer at risk?
  churnwatch policy check policy.toml
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="churnwatch", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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

    sub.add_parser("topics", help="create every topic the worker needs",
                   description="Create the input, output and internal topics with "
                   "CHURNWATCH_PARTITIONS partitions (existing ones are checked).")

    ex = sub.add_parser("explain", help="a customer's current state, signals, score, actions",
                        description="Read the customer's latest state from the state "
                        "table's changelog on CHURNWATCH_BROKER_URL (no worker needed) and "
                        "score it with the policy at the customer's latest event time.")
    ex.add_argument("customer_id")
    ex.add_argument("--at", help="judge at this time instead (ISO-8601 with offset)")

    pol = sub.add_parser("policy", help="policy file tools")
    polsub = pol.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    chk = polsub.add_parser("check", help="validate a policy file and print the result")
    chk.add_argument("file")
    polsub.add_parser("defaults", help="print the default policy as a TOML file to start from")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ConfigError, PolicyError) as exc:
        print(f"churnwatch: configuration error: {exc}", file=sys.stderr)
        return 2
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
            print(policy_toml(load_policy(None)), end="")
            return 0
        policy = load_policy(args.file)
        print(f"# {args.file}: OK. In effect (defaults filled in):")
        print(policy_toml(policy), end="")
        return 0
    settings = from_env()
    settings.policy()  # fail now, naming the key, not inside the worker
    if args.command == "demo":
        from .demo import run_demo

        # Ctrl-C (even where a shell started us with SIGINT ignored) and
        # SIGTERM both unwind the demo, which stops the worker and broker.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        return run_demo(settings, args.customers, args.days, args.seed, args.quiet)
    if args.command == "worker":
        from .worker import run_worker

        run_worker(create_topics=not args.no_create_topics)
        return 0
    if args.command == "broker":
        from .broker import LocalBroker

        with LocalBroker(port=args.port) as broker:
            print(f"Local broker listening on {broker.bootstrap} (in memory; Ctrl-C stops it)")
            print(f"  export CHURNWATCH_BROKER_URL={broker.url} CHURNWATCH_BROKER_PROFILE=local")
            while broker.proc is not None and broker.proc.poll() is None:
                time.sleep(0.5)
        return 0
    if args.command == "explain":
        from .explain import describe, latest_state, parse_at

        try:
            at = parse_at(args.at) if args.at else None
        except ValueError as exc:
            print(f"churnwatch: {exc}", file=sys.stderr)
            return 2
        state = latest_state(settings, args.customer_id)
        if state is None:
            print(f"churnwatch: no state for customer {args.customer_id!r} on "
                  f"{settings.broker_url} (topic {settings.state_changelog_topic})",
                  file=sys.stderr)
            return 1
        print(describe(state, settings.policy(), at))
        return 0
    if args.command == "topics":
        from .admin import create_topics

        created = create_topics(settings)
        print("created: " + (", ".join(created) if created else "nothing (all exist)"))
        return 0
    raise AssertionError(args.command)
