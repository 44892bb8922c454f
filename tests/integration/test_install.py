"""A plain ``pip install`` of the project runs the demo with the default settings.

The project's own environment has the test tools and every extra, so it
cannot show that a user's ``pip install .`` is enough.  This test makes a
fresh virtual environment, installs a copy of the checkout into it with no
extras (as a wheel, not editable), and runs ``churnwatch demo`` from it with
no ``CHURNWATCH_*`` variable set, so the worker runs on the production
default store, RocksDB.  It takes a minute or two (most of it pip, helped by
its cache), hence ``slow``; ``make test`` and CI run it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
#: Not part of what a user installs from a clone.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "var", "build", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".mypy_cache", ".ruff_cache")


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_plain_install_runs_the_demo_on_the_default_store(tmp_path: Path) -> None:
    source = tmp_path / "churnwatch"
    # A copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    # The user's environment: none of the test session's CHURNWATCH_* pins
    # (the unit tests pin a memory store) and none of its Python paths.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CHURNWATCH_", "PYTHON", "VIRTUAL_ENV"))}
    env["TMPDIR"] = str(tmp_path)  # the demo's work folder, removed with tmp_path
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], env, tmp_path, 120)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run([str(python), "-m", "pip", "install", "--quiet", str(source)],
                    env, tmp_path, 900)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    where = run([str(python), "-c", "import stream_app; print(stream_app.__file__)"],
                env, tmp_path, 60)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    # The test tools are not in it: this is the plain install, not the dev one.
    assert run([str(python), "-c", "import pytest"], env, tmp_path, 60).returncode != 0

    demo = run([str(venv / "bin" / "churnwatch"), "demo", "--customers", "100", "--quiet"],
               env, tmp_path, 600)
    out = demo.stdout
    assert demo.returncode == 0, out[-3000:] + demo.stderr[-3000:]
    assert "Summary" in out
    processed = re.search(r"events processed\s+([\d,]+)", out)
    assert processed and int(processed[1].replace(",", "")) > 1000, out
    # --quiet: progress and summary only, no alert lines as they arrive.
    assert not re.search(r"^\[\d{4}-\d\d-\d\d\] ", out, re.M), out
    assert re.search(r"^alerts\s+[1-9][\d,]* for", out, re.M), out
    # The worker ran on RocksDB (the default store), not in memory.
    workdir = re.search(r"log: (\S+)/worker\.log", out)
    assert workdir, out
    state = Path(workdir[1]) / "state"
    assert any(p.name == "CURRENT" for p in state.rglob("CURRENT")), \
        f"no RocksDB files under {state}"
