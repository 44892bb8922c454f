"""The command line an operator meets: one actionable line on every error, and
the conventions (--version, config, policy docs) they expect."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import orjson
import pytest

from stream_app.core.policy import Policy, load_policy
from stream_app.interfaces import deadletters
from stream_app.interfaces.cli import main, version
from stream_app.kafka.broker import free_port

GOOD = {"CHURNWATCH_STORE": "memory://"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean CHURNWATCH_* environment with the store every install has."""
    import os

    for key in list(os.environ):
        if key.startswith("CHURNWATCH_"):
            monkeypatch.delenv(key)
    for key, value in GOOD.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"churnwatch {version()}"
    assert version()[0].isdigit()


def test_config_shows_sources_and_masks_secrets(env: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("CHURNWATCH_API_TOKEN", "tok-hunter2")
    env.setenv("CHURNWATCH_LOG_LEVEL", "INFO")
    assert main(["config", "--json"]) == 0
    rows = {r["name"]: r for r in orjson.loads(capsys.readouterr().out)}
    assert rows["CHURNWATCH_LOG_LEVEL"] == {"name": "CHURNWATCH_LOG_LEVEL", "value": "info",
                                            "source": "env", "default": "warning"}
    assert rows["CHURNWATCH_PARTITIONS"] == {"name": "CHURNWATCH_PARTITIONS", "value": 4,
                                             "source": "default", "default": 4}
    assert rows["CHURNWATCH_API_TOKEN"]["value"] == "********"
    assert rows["CHURNWATCH_SASL_PASSWORD"]["value"] == ""  # unset: nothing to mask
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    assert "hunter2" not in text
    assert any(line.split()[:3] == ["CHURNWATCH_STORE", "memory://", "env"]
               for line in text.splitlines())


def test_config_names_a_bad_setting(env: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("CHURNWATCH_BROKER_ULR", "kafka://k1:9092")
    assert main(["config"]) == 2
    assert one_line(capsys.readouterr().err).endswith(
        "CHURNWATCH_BROKER_ULR is not a setting; did you mean CHURNWATCH_BROKER_URL?")


def test_every_policy_key_is_documented_and_printed_above_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["policy", "defaults"]) == 0
    text = capsys.readouterr().out
    assert tomllib.loads(text)  # the comments keep it valid TOML
    f = tmp_path / "policy.toml"
    f.write_text(text)
    assert load_policy(f) == Policy()
    lines = text.splitlines()
    for section in fields(Policy):
        for key in fields(getattr(Policy(), section.name)):
            doc = key.metadata.get("doc", "")
            assert doc, f"[{section.name}].{key.name} has no documentation"
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{key.name} = ")
                      and _section_of(lines, i) == f"[{section.name}]")
            comment: list[str] = []
            for line in reversed(lines[:at]):
                if not line.startswith("# "):
                    break
                comment.insert(0, line[2:])
            assert _unwrap(comment) == doc


def _unwrap(lines: list[str]) -> str:
    """Wrapped comment lines back to one paragraph.  The wrapper may break a
    hyphenated word after its hyphen ("high-" / "value"): no space goes there."""
    text = ""
    for line in lines:
        glue = "" if not text or (text.endswith("-") and text[-2:-1].isalpha()) else " "
        text += glue + line
    return text


def _section_of(lines: list[str], i: int) -> str:
    return next(line for line in reversed(lines[:i]) if line.startswith("["))


def test_policy_check_defaults_to_the_policy_file_setting(
        env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check"]) == 2
    assert "CHURNWATCH_POLICY_FILE" in one_line(capsys.readouterr().err)
    f = tmp_path / "policy.toml"
    f.write_text("[overdue]\nmax_silence_probability = 0.05\n")
    env.setenv("CHURNWATCH_POLICY_FILE", str(f))
    assert main(["policy", "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {f}: OK") and "max_silence_probability = 0.05" in out
    f.write_text("[overdue]\nmax_silence_probability = 'x'\n")
    assert main(["policy", "check"]) == 2
    assert "[overdue].max_silence_probability" in one_line(capsys.readouterr().err)


def test_explain_at_names_the_expected_format(env: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "C000001", "--at", "yesterday"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--at 'yesterday'" in line and "ISO-8601" in line and "2025-06-01T00:00:00Z" in line


@pytest.mark.parametrize("command", [
    ["topics"], ["topics", "--list"], ["dead-letters", "list"],
    ["dead-letters", "resend", "--reason", "not_json"], ["explain", "C000001"],
])
def test_no_broker_gets_one_line_saying_what_to_do(
        command: list[str], env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from stream_app.kafka import admin

    env.setattr(admin, "TOOL_TIMEOUT", 1.0)  # the path is the same; the test is quicker
    env.setenv("CHURNWATCH_BROKER_URL", f"kafka://127.0.0.1:{free_port()}")
    assert main(command) == 1
    line = one_line(capsys.readouterr().err)
    assert "cannot reach the broker at kafka://127.0.0.1:" in line and "within 1 s" in line
    assert "CHURNWATCH_BROKER_URL" in line


def test_resend_needs_a_file_or_a_filter(env: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dead-letters", "resend"]) == 2
    assert "--reason" in one_line(capsys.readouterr().err)


# -- dead-letter records, old and new ---------------------------------------------

@pytest.mark.parametrize("reason, code", [
    ("not valid UTF-8 JSON: unexpected character: line 1 column 2 (char 1)", "not_json"),
    ("field 'amount' must be a number, got str", "bad_field"),
    ("missing required field 'ts'", "bad_field"),
    ("event is 70000 bytes; the limit is 65536", "too_large"),
    ("too late: event time 2025-01-01T00:00:00Z is 9.0 days behind", "too_late"),
    ("message key does not match customer_id; key every event by its customer_id", "key_mismatch"),
    ("something new", "other"),
])
def test_records_without_a_reason_code_get_one_from_their_reason(reason: str, code: str
                                                                 ) -> None:
    assert deadletters.reason_code({"reason": reason}) == code
    assert deadletters.reason_code({"reason": reason, "reason_code": "from_future"}) == \
        "from_future"


def test_copy_bytes_of_each_encoding() -> None:
    raw = b"\xff\x00 not text"
    assert deadletters.copy_bytes({"value": "é{", "value_encoding": "utf-8"}) == "é{".encode()
    assert deadletters.copy_bytes({"value": "é{"}) == "é{".encode()  # older records
    import base64

    assert deadletters.copy_bytes({"value": base64.b64encode(raw).decode(),
                                   "value_encoding": "base64"}) == raw
    assert orjson.loads(deadletters.copy_bytes(
        {"value": {"amount": 1}, "value_encoding": "json"})) == {"amount": 1}


def test_an_edited_export_is_read_line_by_line(tmp_path: Path) -> None:
    f = tmp_path / "fix.jsonl"
    lines = [
        {"topic": "purchases", "key": "C1", "value": {"customer_id": "C1"},
         "value_encoding": "json", "dead_letter": {"partition": 0, "offset": 3}},
        {"topic": "contacts", "key": None, "value": "raw", "value_encoding": "utf-8"},
        {"topic": "purchases", "key": "C2", "value": "{\"customer_id\":", "value_truncated": True,
         "not_resendable": "purchases/0@9: the original is no longer on the broker"},
    ]
    f.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + b"\n")
    got = deadletters.from_file(f)
    assert [(g.topic, g.key, g.value) for g in got[:2]] == [
        ("purchases", b"C1", b'{"customer_id":"C1"}'), ("contacts", None, b"raw")]
    assert got[0].refused is None and "dead letter 0:3" in got[0].origin
    assert got[2].refused is not None and "no longer on the broker" in got[2].refused
    f.write_text('{"topic": "purchases", "key": "C1", "value": "x"}\nnot json\n')
    with pytest.raises(deadletters.DeadLetterError, match=r"fix.jsonl:2: not a JSON line"):
        deadletters.from_file(f)
    f.write_text('{"key": "C1", "value": "x"}\n')
    with pytest.raises(deadletters.DeadLetterError, match=r"fix.jsonl:1: expected an object"):
        deadletters.from_file(f)


@pytest.mark.parametrize("line, offered", [
    ("churnwatch de", ["demo", "dead-letters"]),
    ("churnwatch dead-letters ", ["list", "export", "resend"]),
    ("churnwatch dead-letters resend --d", ["--dry-run"]),
    ("churnwatch --quiet topics --l", ["--list"]),  # words it does not know are skipped
    ("churnwatch completion ", ["bash"]),
    ("churnwatch policy check pol", ["policy.toml"]),  # a file name
])
def test_bash_completion_offers_what_the_parser_has(
        line: str, offered: list[str], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    import subprocess

    assert main(["completion", "bash"]) == 0
    script = tmp_path / "churnwatch.bash"
    script.write_text(capsys.readouterr().out)
    (tmp_path / "policy.toml").write_text("")
    words = line.split() + ([""] if line.endswith(" ") else [])
    got = subprocess.run(
        ["bash", "-c", f'source {script}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
         '_churnwatch; printf "%s\\n" "${COMPREPLY[@]}"', "bash", *words],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    assert got.stdout.split() == offered
