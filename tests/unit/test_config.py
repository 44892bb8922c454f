"""Bad configuration fails at start-up, naming the setting or policy key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.cli import main
from stream_app.policy import Policy, PolicyError, load_policy, policy_toml
from stream_app.settings import ConfigError, from_env

GOOD = {"CHURNWATCH_STORE": "memory://"}


def test_defaults_are_valid() -> None:
    s = from_env(GOOD)
    assert s.broker_url == "kafka://127.0.0.1:9092"
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.state_changelog_topic == "churnwatch-customer_to_state-changelog"


@pytest.mark.parametrize("env, named", [
    ({"CHURNWATCH_PARTITIONS": "four"}, "CHURNWATCH_PARTITIONS"),
    ({"CHURNWATCH_PARTITIONS": "0"}, "CHURNWATCH_PARTITIONS"),
    ({"CHURNWATCH_BROKER_URL": "http://x"}, "CHURNWATCH_BROKER_URL"),
    ({"CHURNWATCH_STORE": "redis://"}, "CHURNWATCH_STORE"),
    ({"CHURNWATCH_TOPIC_ALERTS": "bad topic!"}, "CHURNWATCH_TOPIC_ALERTS"),
    ({"CHURNWATCH_TOPIC_ALERTS": "purchases"}, "CHURNWATCH_TOPIC_"),
    ({"CHURNWATCH_BROKER_ULR": "kafka://x:1"}, "CHURNWATCH_BROKER_ULR is not a setting"),
    ({"CHURNWATCH_POLICY_FILE": "/nonexistent.toml"}, "CHURNWATCH_POLICY_FILE"),
    ({"CHURNWATCH_LOG_LEVEL": "loud"}, "CHURNWATCH_LOG_LEVEL"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        from_env({**GOOD, **env})


def test_several_brokers() -> None:
    s = from_env({**GOOD, "CHURNWATCH_BROKER_URL": "kafka://k1:9092;kafka://k2:9092"})
    assert s.bootstrap_servers == "k1:9092,k2:9092"


@pytest.mark.parametrize("text, named", [
    ("[overdue]\nmultiple = 'x'\n", r"\[overdue\].multiple"),
    ("[overdue]\nmultipel = 3\n", r"\[overdue\].multipel is not a setting"),
    ("[nonsense]\na = 1\n", r"unknown section \[nonsense\]"),
    ("[scoring]\nweight_overdue = 150\n", r"\[scoring\].weight_overdue"),
    ("[frequency_drop]\nmax_probability = 2\n", r"\[frequency_drop\].max_probability"),
    ("[alerting]\nopen_at = 10.0\nclose_below = 20.0\n", r"\[alerting\].close_below"),
    ("[history\n", "not valid TOML"),
])
def test_bad_policy_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(text)
    with pytest.raises(PolicyError, match=named):
        load_policy(f)


def test_printed_defaults_load_back_unchanged(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(policy_toml(Policy()))
    assert load_policy(f) == Policy()


def test_partial_policy_keeps_other_defaults(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text("[overdue]\nmultiple = 4\n")
    p = load_policy(f)
    assert p.overdue.multiple == 4.0 and p.overdue.min_days == Policy().overdue.min_days


def test_cli_reports_a_bad_setting_and_exits_2(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "many")
    assert main(["topics"]) == 2
    assert "CHURNWATCH_PARTITIONS='many'" in capsys.readouterr().err
