"""``churnwatch broker`` stops its broker on SIGTERM, as on Ctrl-C: nothing left on the port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stream_app.kafka.broker import free_port, wait_for_port

from .test_shutdown import wait_until

pytestmark = pytest.mark.integration


def children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after it.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_broker_command_stops_the_broker_on_a_stop_signal(sig: signal.Signals) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    # Started with SIGINT ignored, as a script's shell starts a job in the
    # background: Ctrl-C and `kill -INT` must stop it all the same.
    proc = subprocess.Popen([sys.executable, "-m", "stream_app", "broker", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=_sigint_ignored)
    try:
        wait_for_port(port, timeout=30)
        brokers = children(proc.pid)
        assert brokers and all(alive(pid) for pid in brokers)
        proc.send_signal(sig)  # this process only, as an orchestrator or `kill` does
        assert proc.wait(timeout=30) in (0, 130)
        wait_until(lambda: not port_open(port) and not any(alive(p) for p in brokers),
                   timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
