"""The benchmark suite's one command: ``python -m benchmarks`` (``make bench``).

Runs the chosen benchmarks one after another, each on its own embedded
broker, and prints one JSON line per figure (with the machine it ran on) and
then a markdown table on stdout; progress goes to stderr.  Every figure is
measured beside its ceiling or baseline in the same run.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import faults, latency, memory, peer, scaleout, throughput
from .common import Figure, WorkerFailed, log, machine_info, markdown_table

BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[Figure]]] = {
    "throughput": throughput.run,
    "latency": latency.run,
    "memory": memory.run,
    "scaleout": scaleout.run,
    "faults": faults.run,
    "peer": peer.run,
}

#: --quick: a smoke run of all benchmarks in a few minutes.
QUICK = {"customers": 500, "latency_seconds": 10.0, "rates": "1000,2000",
         "memory_customers": "10000,100000", "scale_customers": 500,
         "fault_customers": 500, "burst_events": 30000}
#: The full run's sizes (what the README reports).  The throughput stream of
#: 20,000 customers over 540 days is about 1 M events: at a few hundred events/s
#: that is most of an hour, hence --customers.
FULL = {"customers": 20000, "latency_seconds": 60.0, "rates": "1000,2000",
        "memory_customers": "100000,1000000", "scale_customers": 4000,
        "fault_customers": 2000, "burst_events": 300000}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Churnwatch benchmarks: throughput, latency, memory and recovery, "
                    "scale-out; each beside its ceiling, measured in the same run.")
    p.add_argument("--only", default=",".join(BENCHMARKS),
                   help=f"comma-separated subset of: {', '.join(BENCHMARKS)} "
                        "(memory includes recovery)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes for a smoke run of a few minutes: "
                        + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    p.add_argument("--customers", type=int,
                   help=f"throughput: customers in the stream (default {FULL['customers']:,}; "
                        "~52 events each over 540 days)")
    p.add_argument("--days", type=int, default=540, help="synthetic history in days")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rates", help="latency: steady input rates in events/s "
                                   f"(default {FULL['rates']})")
    p.add_argument("--latency-seconds", type=float,
                   help=f"latency: seconds of steady input per rate "
                        f"(default {FULL['latency_seconds']:g})")
    p.add_argument("--producer-linger-ms", type=int, default=5,
                   help="latency: how long the paced input producer lingers before it "
                        "sends a batch (default 5, Kafka's own producer default)")
    p.add_argument("--memory-customers",
                   help="memory/recovery: tracked customers, comma-separated "
                        f"(default {FULL['memory_customers']})")
    p.add_argument("--stores", default="memory://,rocksdb://",
                   help="memory/recovery: stores to measure")
    p.add_argument("--scale-customers", type=int,
                   help=f"scale-out: customers in the stream (default "
                        f"{FULL['scale_customers']:,})")
    p.add_argument("--faults", default=",".join(faults.PARTS),
                   help=f"faults: comma-separated subset of: {', '.join(faults.PARTS)}")
    p.add_argument("--fault-customers", type=int,
                   help=f"faults: customers in the pause, broker-loss and kill streams "
                        f"(default {FULL['fault_customers']:,})")
    p.add_argument("--pause-seconds", type=float, default=20.0,
                   help="faults: how long the broker is stopped (SIGSTOP)")
    p.add_argument("--loss-seconds", type=float, default=180.0,
                   help="faults: how long a worker is watched after the broker is killed")
    p.add_argument("--burst-events", type=int,
                   help=f"faults: events in the burst (default {FULL['burst_events']:,})")
    p.add_argument("--kills", type=int, default=3,
                   help="faults: SIGKILLs of the worker mid-stream")
    p.add_argument("--peer-python", type=Path, metavar="PYTHON",
                   help="peer: the Python that runs the quix-streams job (one with "
                        "quixstreams installed, e.g. a separate virtualenv's); "
                        "default this one")
    p.add_argument("--headroom", action="store_true",
                   help="throughput: also run a worker with the assessment switched off "
                        "(signals, alert decision, due time), on the same stream: the most "
                        "a faster assessment could give")
    p.add_argument("--out", type=Path, help="also write the results to this JSON file")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="throughput: sample the worker with py-spy (if installed) into "
                        "DIR/throughput-worker.folded and print where its time goes")
    p.add_argument("--keep", action="store_true",
                   help="keep each benchmark's temporary directory (logs, state)")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name, default in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    if "recovery" in chosen:
        chosen = [("memory" if b == "recovery" else b) for b in chosen]
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from "
                f"{', '.join(BENCHMARKS)}")
    args.chosen = list(dict.fromkeys(chosen))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    args.rate_list = [int(float(r)) for r in str(args.rates).split(",") if r.strip()]
    args.memory_list = [int(float(n)) for n in str(args.memory_customers).split(",")
                        if n.strip()]
    args.store_list = [x.strip() for x in args.stores.split(",") if x.strip()]
    args.fault_list = [x.strip() for x in args.faults.split(",") if x.strip()]
    unknown = [x for x in args.fault_list if x not in faults.PARTS]
    if unknown:
        p.error(f"unknown fault(s): {', '.join(unknown)}; choose from {', '.join(faults.PARTS)}")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so every worker and broker is stopped.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    machine = machine_info()
    log(f"machine: {machine['cpus']} CPUs, {machine['cpu_model']}, "
        f"{machine['mem_gib']} GiB, Python {machine['python']}")
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name in args.chosen:
        started = time.monotonic()
        log(f"=== {name} ===")
        try:
            got = BENCHMARKS[name](args)
        except KeyboardInterrupt:
            log("interrupted; everything started has been stopped")
            return 130
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, WorkerFailed):
                traceback.print_exc()
            log(f"{name} failed: {failed[name]}")
            continue
        timings[name] = time.monotonic() - started
        log(f"{name}: done in {timings[name]:,.0f} s")
        for f in got:
            f.params.setdefault("benchmark_seconds", round(timings[name], 1))
            print(json.dumps(f.as_dict(machine)), flush=True)
        figures.extend(got)
    print()
    print(f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), "
          f"{machine['mem_gib']} GiB RAM, Python {machine['python']}, "
          f"{machine['platform']}")
    print()
    print(markdown_table(figures))
    print()
    print("Run time: " + ", ".join(f"{k} {v:,.0f} s" for k, v in timings.items()))
    for name, why in failed.items():
        print(f"FAILED {name}: {why}")
    if args.out:
        result: dict[str, Any] = {
            "machine": machine, "run_seconds": timings, "failed": failed,
            "figures": [f.as_dict(machine) for f in figures]}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"results written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
