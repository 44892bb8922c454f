"""The demo command: Ctrl-C stops the broker and worker it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line or environment mention ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                if text.encode() in (proc / part).read_bytes():
                    found.append(int(proc.name))
                    break
            except OSError:
                pass
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find processes")
def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        demo = subprocess.Popen([sys.executable, "-m", "stream_app", "demo", "--customers",
                                 "2000", "--quiet"], stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        port = None
        while time.monotonic() < deadline and demo.poll() is None:
            text = out.read_text(errors="replace")
            found = re.search(r"Local broker on 127\.0\.0\.1:(\d+)", text)
            if found and "Starting a worker" in text:
                port = found.group(1)
                if len(processes_mentioning(f"127.0.0.1:{port}")) >= 2:  # broker, worker
                    break
            time.sleep(0.2)
        assert port is not None, out.read_text(errors="replace")
        assert processes_mentioning(f"127.0.0.1:{port}"), "broker and worker not running"
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 130
    assert "interrupted" in out.read_text()
    assert processes_mentioning(f"127.0.0.1:{port}") == []


def test_the_demo_ends_with_a_live_look_up_and_every_metric(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "stream_app", "demo", "--customers", "150",
                           "--days", "400", "--quiet"], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lookup = re.search(r"Look-up  GET /customers/(\S+)  ->  HTTP (\d+)\n  risk ([\d.]+)",
                       done.stdout)
    assert lookup and lookup.group(2) == "200", done.stdout[-1500:]
    assert float(lookup.group(3)) >= 30  # the riskiest alerted customer is still at risk
    metrics = re.search(r"Metrics  GET /metrics  ->  HTTP 200, (\d+)/(\d+) churnwatch", done.stdout)
    assert metrics and metrics.group(1) == metrics.group(2), done.stdout[-800:]
