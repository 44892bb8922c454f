"""Bad configuration fails at start-up, naming the setting or policy key."""

from __future__ import annotations

import inspect
import re
import socket
import ssl
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from stream_app.core.policy import Policy, PolicyError, load_policy, policy_toml
from stream_app.core.settings import (
    OUTPUT_TOPIC_FIELDS,
    TOPIC_FIELDS,
    ConfigError,
    Settings,
    from_env,
    kafka_client_options,
)
from stream_app.interfaces.cli import main
from stream_app.kafka.admin import new_topic, topic_names
from stream_app.kafka.faust_config import app_options, broker_credentials

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


def test_names_from_a_list_are_taken_in_any_case() -> None:
    s = from_env({**SASL, "CHURNWATCH_LOG_LEVEL": "INFO", "CHURNWATCH_LOG_FORMAT": "Text",
                  "CHURNWATCH_SECURITY_PROTOCOL": "sasl_plaintext",
                  "CHURNWATCH_SASL_MECHANISM": "scram-sha-256",
                  "CHURNWATCH_BROKER_PROFILE": "LOCAL"})
    assert (s.log_level, s.log_format, s.security_protocol, s.sasl_mechanism,
            s.broker_profile) == ("info", "text", "SASL_PLAINTEXT", "SCRAM-SHA-256", "local")
    assert "ssl_context" not in kafka_client_options(s)  # SASL_PLAINTEXT, folded, has no TLS
    with pytest.raises(ConfigError, match="CHURNWATCH_LOG_LEVEL='LOUD'"):
        from_env({**GOOD, "CHURNWATCH_LOG_LEVEL": "LOUD"})  # quoted as written


@pytest.mark.parametrize("typo, meant", [
    ("CHURNWATCH_BROKER_ULR", "CHURNWATCH_BROKER_URL"),
    ("CHURNWATCH_BROKERURL", "CHURNWATCH_BROKER_URL"),
    ("CHURNWATCH_LOGLEVEL", "CHURNWATCH_LOG_LEVEL"),
    ("CHURNWATCH_partitions", "CHURNWATCH_PARTITIONS"),
    ("CHURNWATCH_TOPIC_ALERT", "CHURNWATCH_TOPIC_ALERTS"),
])
def test_an_unknown_name_suggests_the_nearest_setting(typo: str, meant: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_env({**GOOD, typo: "x"})
    assert str(err.value) == f"{typo} is not a setting; did you mean {meant}?"


def test_an_unknown_name_like_no_setting_lists_them_all() -> None:
    with pytest.raises(ConfigError) as err:
        from_env({**GOOD, "CHURNWATCH_ZZZ": "1"})
    assert "did you mean" not in str(err.value)
    assert "known settings: CHURNWATCH_API_TOKEN, CHURNWATCH_APP_ID" in str(err.value)


def test_each_input_kind_has_its_topic_setting_and_back() -> None:
    s = from_env({**GOOD, "CHURNWATCH_TOPIC_CONTACTS": "crm-contacts"})
    assert s.topic_for("contacts") == "crm-contacts"
    assert s.kind_by_topic() == {"purchases": "purchases", "crm-contacts": "contacts",
                                 "complaints": "complaints", "feedback": "feedback"}
    assert tuple(s.kind_by_topic()) == s.input_topics
    # Every topic setting is an input kind's or an output's: none is left out.
    topic_settings = {f for f in Settings.__dataclass_fields__ if f.startswith("topic_")}
    assert topic_settings == {*TOPIC_FIELDS.values(), *OUTPUT_TOPIC_FIELDS}


def test_several_brokers() -> None:
    s = from_env({**GOOD, "CHURNWATCH_BROKER_URL": "kafka://k1:9092;kafka://k2:9092"})
    assert s.bootstrap_servers == "k1:9092,k2:9092"


@pytest.mark.parametrize("text, named", [
    ("[overdue]\nmax_silence_probability = 'x'\n",
     r"\[overdue\].max_silence_probability: expected a number"),
    ("[overdue]\nmax_silence_probability = 1.5\n",
     r"\[overdue\].max_silence_probability: expected a value in \(0, 1\]"),
    ("[overdue]\nmultiple = 3\n", r"\[overdue\].multiple is not a setting"),  # gone
    ("[nonsense]\na = 1\n", r"unknown section \[nonsense\]"),
    ("[scoring]\nodds_overdue = 150\n", r"\[scoring\].odds_overdue: expected an odds"),
    ("[scoring]\nodds_complaints = 0\n", r"\[scoring\].odds_complaints: expected an odds"),
    ("[scoring]\nweight_overdue = 0.5\n", r"\[scoring\].weight_overdue is not a setting"),
    ("[model]\nalpha = 0\n", r"\[model\].alpha: expected a value above 0"),
    ("[model]\ntypical_basket = -1\n", r"\[model\].typical_basket: expected a value of 0 or"),
    ("[overdue]\nprior_purchases = 0\n", r"\[overdue\].prior_purchases: expected a value above"),
    ("[model]\nno_purchase_risk = 1.5\n", r"\[model\].no_purchase_risk: expected a value in"),
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
    f.write_text("[overdue]\nmax_silence_probability = 0.05\n[model]\nhorizon_days = 60\n")
    p = load_policy(f)
    assert p.overdue.max_silence_probability == 0.05
    assert p.overdue.min_days == Policy().overdue.min_days
    assert p.model.horizon_days == 60.0 and isinstance(p.model.horizon_days, float)
    assert p.model.r == Policy().model.r and p.scoring == Policy().scoring


def test_cli_reports_a_bad_setting_and_exits_2(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "many")
    assert main(["topics"]) == 2
    assert "CHURNWATCH_PARTITIONS='many'" in capsys.readouterr().err


# --- broker security (managed Kafka) and the web URL peers route to -----------

SECRET = "s3cr3t-pa55word"
SASL = {**GOOD, "CHURNWATCH_SECURITY_PROTOCOL": "SASL_SSL",
        "CHURNWATCH_SASL_MECHANISM": "SCRAM-SHA-512",
        "CHURNWATCH_SASL_USERNAME": "churnwatch", "CHURNWATCH_SASL_PASSWORD": SECRET}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, and a client certificate and key it signed, as PEM files."""
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    client = ca.issue_cert("churnwatch.example")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    client.private_key_pem.write_to_path(str(d / "client.key"))
    (d / "garbage.pem").write_text("not a certificate\n")
    return {name: str(d / f"{name}") for name in
            ("ca.pem", "client.pem", "client.key", "garbage.pem")}


@pytest.mark.parametrize("env, named", [
    ({"CHURNWATCH_SECURITY_PROTOCOL": "TLS"}, "CHURNWATCH_SECURITY_PROTOCOL='TLS'"),
    ({**SASL, "CHURNWATCH_SASL_MECHANISM": "GSSAPI"}, "CHURNWATCH_SASL_MECHANISM"),
    ({**SASL, "CHURNWATCH_SASL_USERNAME": ""}, "CHURNWATCH_SASL_USERNAME is required"),
    ({**SASL, "CHURNWATCH_SASL_PASSWORD": ""}, "CHURNWATCH_SASL_PASSWORD is required"),
    ({"CHURNWATCH_SASL_USERNAME": "u"}, "CHURNWATCH_SASL_USERNAME is set but "
     "CHURNWATCH_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"CHURNWATCH_SSL_CAFILE": "/etc/hostname"}, "CHURNWATCH_SSL_CAFILE is set but"),
    ({**SASL, "CHURNWATCH_SSL_CAFILE": "/nonexistent/ca.pem"}, "CHURNWATCH_SSL_CAFILE"),
    ({"CHURNWATCH_SECURITY_PROTOCOL": "SSL", "CHURNWATCH_SSL_KEYFILE": "/nonexistent.key"},
     "CHURNWATCH_SSL_KEYFILE"),
    ({"CHURNWATCH_WEB_CANONICAL_URL": "worker-0:6066"}, "CHURNWATCH_WEB_CANONICAL_URL"),
])
def test_bad_security_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        from_env({**GOOD, **env})


def test_unreadable_ca_and_key_fail_at_start_up(tls: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"CHURNWATCH_SSL_CAFILE=.*not a readable PEM"):
        from_env({**SASL, "CHURNWATCH_SSL_CAFILE": tls["garbage.pem"]})
    with pytest.raises(ConfigError, match="CHURNWATCH_SSL_KEYFILE needs CHURNWATCH_SSL_CERTFILE"):
        from_env({**SASL, "CHURNWATCH_SSL_KEYFILE": tls["client.key"]})
    with pytest.raises(ConfigError, match="cannot load the client certificate") as err:
        from_env({**SASL, "CHURNWATCH_SSL_CERTFILE": tls["client.pem"],
                  "CHURNWATCH_SSL_KEYFILE": tls["garbage.pem"],
                  "CHURNWATCH_SSL_KEY_PASSWORD": SECRET})
    assert SECRET not in str(err.value)


def test_secrets_stay_out_of_messages_and_repr() -> None:
    with pytest.raises(ConfigError) as err:
        from_env({**SASL, "CHURNWATCH_SASL_USERNAME": ""})
    assert SECRET not in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_env({**GOOD, "CHURNWATCH_SASL_PASSWORD": SECRET})
    assert SECRET not in str(err.value)
    s = from_env({**SASL, "CHURNWATCH_API_TOKEN": "tok-" + SECRET})
    assert SECRET not in repr(s) and SECRET not in repr(broker_credentials(s))


def test_plaintext_options_are_just_the_brokers() -> None:
    s = from_env({**GOOD, "CHURNWATCH_BROKER_URL": "kafka://k1:9092;kafka://k2:9092"})
    assert kafka_client_options(s) == {"bootstrap_servers": "k1:9092,k2:9092",
                                       "security_protocol": "PLAINTEXT"}
    assert app_options(s)["broker_credentials"] is None


def test_sasl_ssl_reaches_worker_and_tools_alike(tls: dict[str, str]) -> None:
    s = from_env({**SASL, "CHURNWATCH_SSL_CAFILE": tls["ca.pem"]})
    opts = kafka_client_options(s)
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == ("churnwatch", SECRET)
    ctx = opts["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # our CA only, not the system bundle
    # Faust's driver turns the credentials into the same aiokafka arguments.
    worker = credentials_to_aiokafka_auth(app_options(s)["broker_credentials"])
    assert {k: v for k, v in worker.items() if k != "ssl_context"} == {
        k: v for k, v in opts.items() if k not in ("ssl_context", "bootstrap_servers")}
    assert worker["ssl_context"].get_ca_certs() == ctx.get_ca_certs()


def test_sasl_plaintext_has_no_tls() -> None:
    s = from_env({**SASL, "CHURNWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                  "CHURNWATCH_SASL_MECHANISM": "PLAIN"})
    assert "ssl_context" not in kafka_client_options(s)
    auth = credentials_to_aiokafka_auth(app_options(s)["broker_credentials"])
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["ssl_context"] is None


def test_mutual_tls(tls: dict[str, str]) -> None:
    s = from_env({**GOOD, "CHURNWATCH_SECURITY_PROTOCOL": "SSL",
                  "CHURNWATCH_SSL_CAFILE": tls["ca.pem"],
                  "CHURNWATCH_SSL_CERTFILE": tls["client.pem"],
                  "CHURNWATCH_SSL_KEYFILE": tls["client.key"]})
    opts = kafka_client_options(s)
    assert set(opts) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    auth = credentials_to_aiokafka_auth(app_options(s)["broker_credentials"])
    assert auth["security_protocol"] == "SSL"


def test_client_options_are_known_to_every_client_library() -> None:
    s = from_env(SASL)
    names = set(kafka_client_options(s))
    for config in (KafkaConsumer.DEFAULT_CONFIG, KafkaProducer.DEFAULT_CONFIG,
                   KafkaAdminClient.DEFAULT_CONFIG):
        assert names <= set(config), names - set(config)
    for cls in (AIOKafkaConsumer, AIOKafkaProducer):
        assert names <= set(inspect.signature(cls).parameters)


@pytest.mark.parametrize("env, url", [
    ({}, "http://127.0.0.1:6066"),
    ({"CHURNWATCH_WEB_HOST": "0.0.0.0"}, f"http://{socket.gethostname()}:6066"),
    ({"CHURNWATCH_WEB_HOST": "0.0.0.0", "CHURNWATCH_WEB_PORT": "7000",
      "CHURNWATCH_WEB_CANONICAL_URL": "http://churnwatch-2.churnwatch-workers:7000/"},
     "http://churnwatch-2.churnwatch-workers:7000"),
])
def test_workers_listen_on_web_host_and_announce_canonical_url(env: dict[str, str],
                                                               url: str) -> None:
    s = from_env({**GOOD, **env})
    opts = app_options(s)
    assert opts["web_bind"] == s.web_host
    assert opts["canonical_url"] == url
    # Faust builds its own canonical URL from web_host and web_port when the
    # worker command overrides them; keep them consistent with ours.
    assert f"http://{opts['web_host']}:{opts['web_port']}" == url


def test_topics_are_created_co_partitioned_and_the_changelog_compacted() -> None:
    s = from_env({**GOOD, "CHURNWATCH_PARTITIONS": "12", "CHURNWATCH_REPLICATION": "3"})
    specs = {t.name: t for t in (new_topic(s, n) for n in topic_names(s))}
    assert s.state_changelog_topic in specs and s.clock_topic in specs
    assert {(t.num_partitions, t.replication_factor) for t in specs.values()} == {(12, 3)}
    # Under the default delete policy a quiet customer's state would expire.
    assert specs[s.state_changelog_topic].topic_configs == {"cleanup.policy": "compact"}
    assert all(t.topic_configs == {} for n, t in specs.items() if n != s.state_changelog_topic)


def test_a_tools_own_variables_pass_the_workers_check_and_typos_still_fail() -> None:
    """One environment file serves the worker and the webhook sink."""
    s = from_env({"CHURNWATCH_SINK_SECRET": "x", "CHURNWATCH_PARTITIONS": "6"})
    assert s.partitions == 6
    with pytest.raises(ConfigError, match="did you mean CHURNWATCH_PARTITIONS"):
        from_env({"CHURNWATCH_SINK_SECRET": "x", "CHURNWATCH_PARTITONS": "6"})
