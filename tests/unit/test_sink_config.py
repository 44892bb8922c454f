"""The sink's options: variables, options over them, and one line for a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.core.settings import ConfigError
from stream_app.interfaces import cli
from stream_app.interfaces.sink import command
from stream_app.interfaces.sink.config import SECRETS, from_env
from stream_app.interfaces.sink.runner import shown_url

URL = "https://crm.example.com/hooks/churn"


def test_defaults_and_the_group_named_for_the_format() -> None:
    s = from_env({}, {"sink_url": URL})
    assert (s.sink_format, s.sink_max_attempts, s.sink_from_beginning) == ("raw", 8, False)
    assert s.group("churnwatch") == "churnwatch-sink-raw"
    assert from_env({}, {"sink_url": URL, "sink_group": "crm"}).group("x") == "crm"


def test_variables_follow_the_settings_names_and_options_win() -> None:
    env = {"CHURNWATCH_SINK_URL": URL, "CHURNWATCH_SINK_FORMAT": "Braze",
           "CHURNWATCH_SINK_MAX_ATTEMPTS": "3", "CHURNWATCH_SINK_FROM_BEGINNING": "yes",
           "CHURNWATCH_SINK_SECRET": "zq-secret", "CHURNWATCH_SINK_HEADERS": "X-A: 1\nX-B: two"}
    s = from_env(env)
    assert (s.sink_url, s.sink_format, s.sink_max_attempts) == (URL, "braze", 3)
    assert s.sink_from_beginning and s.sink_secret == "zq-secret"
    assert s.headers == {"X-A": "1", "X-B": "two"}
    s = from_env(env, {"sink_max_attempts": 5, "sink_format": None})
    assert (s.sink_max_attempts, s.sink_format) == (5, "braze")
    assert "zq-secret" not in repr(s), "secrets stay out of logs"
    assert {"sink_secret", "sink_authorization"} == SECRETS


@pytest.mark.parametrize(("env", "options", "message"), [
    ({}, {}, "give the endpoint: churnwatch sink webhook URL (or set CHURNWATCH_SINK_URL)"),
    ({}, {"sink_url": "ftp://x"}, "URL 'ftp://x': expected an http:// or https:// URL"),
    ({"CHURNWATCH_SINK_URL": "crm"}, {}, "CHURNWATCH_SINK_URL='crm': expected an http://"),
    ({"CHURNWATCH_SINK_MAX_ATTEMTS": "3"}, {"sink_url": URL},
     "CHURNWATCH_SINK_MAX_ATTEMTS is not a sink setting; did you mean "
     "CHURNWATCH_SINK_MAX_ATTEMPTS?"),
    ({"CHURNWATCH_SINK_MAX_ATTEMPTS": "many"}, {"sink_url": URL},
     "CHURNWATCH_SINK_MAX_ATTEMPTS='many': expected a whole number"),
    ({}, {"sink_url": URL, "sink_max_attempts": 0}, "--max-attempts 0: expected 1..100"),
    ({}, {"sink_url": URL, "sink_backoff_seconds": 5.0, "sink_max_delay_seconds": 1.0},
     "--max-delay-seconds 1.0: expected 5..3600 seconds"),
    ({}, {"sink_url": URL, "sink_event_name": "churn alert"}, "--event-name 'churn alert'"),
    ({}, {"sink_url": URL, "sink_headers": "Authorization: Bearer x"},
     "put it in CHURNWATCH_SINK_AUTHORIZATION"),
    ({}, {"sink_url": URL, "sink_headers": "no colon"}, "expected 'Name: value'"),
    ({"CHURNWATCH_SINK_AUTHORIZATION": "Bearer a\nX-Evil: 1"}, {"sink_url": URL},
     "CHURNWATCH_SINK_AUTHORIZATION=(set): one line"),
])
def test_a_bad_value_is_refused_naming_where_it_came_from(env: dict[str, str],
                                                          options: dict[str, object],
                                                          message: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_env(env, options)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and "Bearer a" not in str(err.value)


def test_the_command_fails_at_start_up_with_one_line(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_SINK_FORMAT", "braze")  # not refused by the worker's settings
    assert cli.main(["sink", "webhook", URL, "--max-attempts", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "churnwatch sink: --max-attempts 0: expected 1..100 (1: no retries)\n"


def test_secrets_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    (tmp_path / "empty").write_text("")
    args = cli.build_parser().parse_args(["sink", "webhook", URL, "--secret-file",
                                     str(tmp_path / "secret"), "--header", "X-A: 1"])
    s = command.sink_settings(args, {})
    assert s.sink_secret == "s3cret" and s.headers == {"X-A": "1"}
    args.secret_file = str(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"--secret-file .*: the file is empty"):
        command.sink_settings(args, {})


def test_the_worker_settings_do_not_see_the_sinks_variables() -> None:
    env = {"CHURNWATCH_SINK_URL": URL, "CHURNWATCH_APP_ID": "cw", "HOME": "/h"}
    assert command.core_environ(env) == {"CHURNWATCH_APP_ID": "cw", "HOME": "/h"}


def test_help_reads_well(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["sink", "webhook", "--help"])
    out = capsys.readouterr().out
    for needed in ("--group", "--from-beginning", "braze", "hubspot", "slack",
                   "Idempotency-Key", "Churnwatch-Signature", "CHURNWATCH_SINK_"):
        assert needed in out


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/..."),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("https://crm.example.com", "https://crm.example.com"),
])
def test_logs_name_the_endpoint_without_its_path(url: str, shown: str) -> None:
    """A Slack webhook URL's path is its secret."""
    assert shown_url(url) == shown
