"""The operator commands against a real broker: topics, and dead letters sent back.

Most tests use a broker of their own with no worker (the commands need only
the broker); the last one goes through the shared worker, from a dead letter
it wrote to the fixed event it applies.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from stream_app.core.records import asdict
from stream_app.core.settings import Settings
from stream_app.engine.processing import dead_letter
from stream_app.interfaces.cli import main
from stream_app.interfaces.deadletters import RESENT_HEADER
from stream_app.kafka.broker import LocalBroker

from .conftest import WAIT, Cluster

pytestmark = pytest.mark.integration


def use(monkeypatch: pytest.MonkeyPatch, s: Settings, **extra: str) -> None:
    """Point the in-process commands at ``s``'s broker, as an operator's shell would."""
    import os

    for key in list(os.environ):
        if key.startswith("CHURNWATCH_"):
            monkeypatch.delenv(key)
    for key, value in {"CHURNWATCH_BROKER_URL": s.broker_url, "CHURNWATCH_APP_ID": s.app_id,
                       "CHURNWATCH_BROKER_PROFILE": "local", "CHURNWATCH_STORE": "memory://",
                       **extra}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    log = tmp_path_factory.mktemp("cli-broker") / "broker.log"
    with LocalBroker(log_path=log) as b:
        yield Settings().with_overrides(broker_url=b.url, broker_profile="local",
                                        store="memory://", app_id="cli-it")


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_topics_create_list_describe_and_a_partition_mismatch(
        broker: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    use(monkeypatch, broker)
    assert main(["topics"]) == 0
    assert capsys.readouterr().out.startswith("created: purchases, contacts")
    assert main(["topics", "--list", "--json"]) == 0
    listed = {t["name"]: t for t in orjson.loads(capsys.readouterr().out)}
    assert listed["purchases"] == {"name": "purchases", "role": "input", "partitions": 4}
    assert listed[broker.state_changelog_topic]["role"].startswith("internal: state")
    assert main(["topics", "--describe", "--json"]) == 0
    described = {t["name"]: t for t in orjson.loads(capsys.readouterr().out)}
    assert set(described) == set(listed)  # the broker holds only ours
    assert [p["partition"] for p in described["dead-letters"]["layout"]] == [0, 1, 2, 3]
    assert all(p["leader"] in p["replicas"] for p in described["dead-letters"]["layout"])

    use(monkeypatch, broker, CHURNWATCH_PARTITIONS="2")
    assert main(["topics"]) == 1
    line = one_line(capsys.readouterr().err)
    assert "has 4 partitions but CHURNWATCH_PARTITIONS=2" in line
    assert "set CHURNWATCH_PARTITIONS=4" in line
    assert main(["topics", "--list"]) == 0  # shows the mismatch rather than failing on it
    assert ["purchases", "4", "partitions", "(CHURNWATCH_PARTITIONS=2)", "[input]"] in [
        line.split() for line in capsys.readouterr().out.splitlines()]


def resent(s: Settings, topic: str, count: int) -> list[Any]:
    """The messages on ``topic`` that the command sent (they carry its header)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=s.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=500)
    got: list[Any] = []
    deadline = time.monotonic() + WAIT
    try:
        while len(got) < count and time.monotonic() < deadline:
            got.extend(m for m in consumer if any(k == RESENT_HEADER for k, _ in m.headers))
    finally:
        consumer.close()
    return got


@pytest.fixture(scope="module")
def letters(broker: Settings) -> dict[str, Any]:
    """Dead letters of both record versions, and the originals they point at."""
    from stream_app.kafka.admin import create_topics

    create_topics(broker)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks=1)
    big = orjson.dumps({"event_id": "dl-big", "customer_id": "dl-2", "amount": 1.0,
                        "ts": "2025-01-01T00:00:00Z", "note": "x" * 5000})
    other = orjson.dumps({"event_id": "dl-other", "customer_id": "dl-9"})
    at = producer.send("purchases", key=b"dl-2", value=big).get(timeout=30)
    other_at = producer.send("purchases", key=b"dl-9", value=other).get(timeout=30)
    broken = b'{"event_id": "dl-e1", "customer_id": "dl-1", "direction": "inbound"'

    def truncated(partition: int, offset: int, sha: str) -> dict[str, Any]:
        """A record as the worker now writes it: a prefix, the size and a checksum."""
        r = asdict(dead_letter("purchases", partition, offset, b"dl-2", big[:200],
                               "event is 5023 bytes; the limit is 4096"))
        r.update(value_truncated=True, value_size=len(big), value_sha256=sha,
                 reason_code="too_large")
        return r

    sha = hashlib.sha256(big).hexdigest()
    old = asdict(dead_letter("contacts", 1, 7, b"dl-1", broken,
                             "not valid UTF-8 JSON: unexpected end of data"))
    for name in ("reason_code", "value_size", "value_sha256", "value_truncated"):
        del old[name]
    records = [
        # As the previous release wrote them: no reason code, the whole value.
        old,
        truncated(at.partition, at.offset, sha),
        truncated(at.partition, 10_000, sha),  # gone: retention took it
        truncated(other_at.partition, other_at.offset, sha),  # not the original
    ]
    for r in records:
        producer.send(broker.topic_dead_letters, key=r["key"].encode(), value=orjson.dumps(r))
    producer.flush()
    producer.close()
    return {"big": big, "broken": broken, "at": at}


def test_list_filters_by_reason_code_and_topic(
        broker: Settings, letters: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    use(monkeypatch, broker)
    assert main(["dead-letters", "list", "--json", "--reason", "not_json"]) == 0
    (old,) = orjson.loads(capsys.readouterr().out)
    assert (old["topic"], old["partition"], old["offset"], old["key"]) == ("contacts", 1, 7,
                                                                          "dl-1")
    assert old["reason_code"] == "not_json"  # derived: the record has none
    assert main(["dead-letters", "list", "--json", "--topic", "purchases"]) == 0
    assert [r["reason_code"] for r in orjson.loads(capsys.readouterr().out)] == [
        "too_large"] * 3
    assert main(["dead-letters", "list"]) == 0
    text = capsys.readouterr().out
    assert "contacts/1@7 not_json key 'dl-1' not valid UTF-8 JSON: unexpected end of data" in [
        " ".join(line.split()) for line in text.splitlines()]
    assert text.rstrip().endswith("4 dead letters: too_large 3, not_json 1")
    assert main(["dead-letters", "list", "--reason", "from_future"]) == 1
    assert "present: too_large (3), not_json (1)" in one_line(capsys.readouterr().err)


def test_resend_by_reason_sends_the_originals_and_refuses_what_it_cannot_check(
        broker: Settings, letters: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    use(monkeypatch, broker)
    assert main(["dead-letters", "resend", "--reason", "too_large", "--dry-run"]) == 1
    assert "would send 1 event (purchases 1)" in capsys.readouterr().out
    assert main(["dead-letters", "resend", "--reason", "too_large"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("sent 1 event again (purchases 1)")
    at = letters["at"]
    assert f"purchases/{at.partition}@10000: the original is no longer on the broker" in err
    assert "its sha256 differs" in err and err.strip().endswith("2 could not be sent (above)")
    (m,) = resent(broker, "purchases", 1)
    assert (m.key, m.value) == (b"dl-2", letters["big"])  # the whole event, byte for byte
    assert dict(m.headers)[RESENT_HEADER].startswith(b"dead-letters:")


def test_export_edit_and_resend_a_file(
        broker: Settings, letters: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    use(monkeypatch, broker)
    f = tmp_path / "fix.jsonl"
    assert main(["dead-letters", "export", str(f)]) == 0
    assert "only in part (their originals are gone)" in capsys.readouterr().out
    lines = [orjson.loads(x) for x in f.read_text().splitlines()]
    assert len(lines) == 4
    (big,) = [x for x in lines if x.get("value_encoding") == "json"]
    assert orjson.dumps(big["value"]) == orjson.dumps(orjson.loads(letters["big"]))
    assert big["value_truncated"] is False  # restored from the source topic
    (broken,) = [x for x in lines if x["reason_code"] == "not_json"]
    assert broken["value"] == letters["broken"].decode()
    # The person fixes the broken contact and keeps only that line.
    fixed = orjson.loads(letters["broken"] + b', "channel": "phone", "ts": '
                         b'"2025-01-01T00:00:00Z"}')
    broken.update(value=fixed, value_encoding="json")
    f.write_bytes(orjson.dumps(broken) + b"\n")
    assert main(["dead-letters", "resend", str(f)]) == 0
    assert capsys.readouterr().out.startswith("sent 1 event again (contacts 1)")
    (m,) = resent(broker, "contacts", 1)
    assert m.key == b"dl-1" and orjson.loads(m.value) == fixed

    f.write_bytes(orjson.dumps({**broken, "topic": "purchasez"}) + b"\n")
    assert main(["dead-letters", "resend", str(f)]) == 1
    assert "'purchasez' is not one of churnwatch's input topics" in \
        one_line(capsys.readouterr().err)


def test_a_dead_letter_from_the_worker_fixed_and_applied(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    s = cluster.settings
    use(monkeypatch, s)
    now = datetime.now(UTC).isoformat()  # never too late, whatever ran before
    bad = {"event_id": "dlfix-e1", "customer_id": "dlfix-1", "ts": now,
           "category": "billing", "severity": "very high"}
    cluster.send(s.topic_complaints, b"dlfix-1", bad)
    cluster.flush()
    cluster.read_until(s.topic_dead_letters,
                       lambda rs: any(r["key"] == "dlfix-1" for r in rs))
    f = tmp_path / "fix.jsonl"
    assert main(["dead-letters", "export", str(f), "--reason", "bad_field",
                 "--topic", s.topic_complaints]) == 0
    (line,) = [x for x in map(orjson.loads, f.read_text().splitlines())
               if x["key"] == "dlfix-1"]
    assert line["value"] == bad and "'severity' must be a whole number" in line["reason"]
    line["value"]["severity"] = 5  # one complaint this severe alerts on its own
    f.write_bytes(orjson.dumps(line) + b"\n")
    assert main(["dead-letters", "resend", str(f)]) == 0
    alerts = cluster.read_until(s.topic_alerts,
                                lambda rs: any(r["customer_id"] == "dlfix-1" for r in rs))
    assert [a["signals"][0]["code"] for a in alerts if a["customer_id"] == "dlfix-1"] == [
        "COMPLAINTS"]
