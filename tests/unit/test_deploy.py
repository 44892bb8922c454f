"""The deployment files parse, and the dashboard plots metrics the worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import Counter, Gauge, Histogram

from stream_app import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def exported_samples() -> set[str]:
    names: set[str] = set()
    for m in vars(metrics).values():
        if isinstance(m, Counter):
            names.add(m._name + "_total")
        elif isinstance(m, Histogram):
            names.update(m._name + s for s in ("_bucket", "_sum", "_count"))
        elif isinstance(m, Gauge):
            names.add(m._name)
    return names


def test_yaml_files_parse() -> None:
    files = sorted(DEPLOY.rglob("*.yml"))
    assert files
    for f in files:
        assert yaml.safe_load(f.read_text()), f
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    env = compose["services"]["churnwatch"]["environment"]
    assert env["CHURNWATCH_BROKER_URL"].startswith("kafka://")


def test_dashboard_uses_only_exported_metrics() -> None:
    dash = json.loads((DEPLOY / "grafana" / "churnwatch-dashboard.json").read_text())
    used = {name for p in dash["panels"] for t in p["targets"]
            for name in re.findall(r"churnwatch_[a-z_]+", t["expr"])}
    assert used and used <= exported_samples(), used - exported_samples()
