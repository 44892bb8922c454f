"""The one settings object: read from ``CHURNWATCH_*`` environment variables.

Everything that differs between a laptop and a production cluster lives here,
so no broker address or topic name is ever written in code.  A bad value fails
at start-up with :class:`ConfigError`, whose message names the variable, rather
than surfacing later as an obscure Kafka or Faust error.

The signal thresholds are not here: they are business policy, kept in the
policy file (:mod:`stream_app.core.policy`) whose path is ``CHURNWATCH_POLICY_FILE``.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .policy import Policy, load_policy

PREFIX = "CHURNWATCH_"
#: The per-customer state table (its changelog topic is derived from it).
STATE_TABLE = "customer_to_state"

#: Broker profiles.  ``local`` carries the few settings the embedded
#: Kafka-compatible broker needs (fast group joins, no end-offset checks);
#: ``kafka`` is a real Apache Kafka cluster and uses Faust's defaults.
PROFILES = ("local", "kafka")
STORES = ("memory://", "rocksdb://")
LOG_LEVELS = ("debug", "info", "warning", "error")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Listening on every interface says nothing about how peers reach us.
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
#: Input kind (the decoder's name for it) -> the setting that names its topic.
#: The one place the pairing is written: the worker's agents, replay, the demo
#: and evaluate all ask :meth:`Settings.topic_for` or :meth:`Settings.kind_by_topic`.
TOPIC_FIELDS: dict[str, str] = {
    "purchases": "topic_purchases", "contacts": "topic_contacts",
    "complaints": "topic_complaints", "feedback": "topic_feedback",
}
#: The settings that name the output topics.
OUTPUT_TOPIC_FIELDS = ("topic_alerts", "topic_dead_letters")


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says what to do."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed, validated configuration of a worker and of the tooling around it."""

    broker_url: str = "kafka://127.0.0.1:9092"
    broker_profile: str = "kafka"
    app_id: str = "churnwatch"
    store: str = "rocksdb://"
    data_dir: str = "var/churnwatch"
    partitions: int = 4
    replication: int = 1
    topic_purchases: str = "purchases"
    topic_contacts: str = "contacts"
    topic_complaints: str = "complaints"
    topic_feedback: str = "feedback"
    topic_alerts: str = "churn-alerts"
    topic_dead_letters: str = "dead-letters"
    web_port: int = 6066
    #: The interface the web server listens on (``0.0.0.0`` in a container).
    web_host: str = "127.0.0.1"
    #: How the other workers reach this one's web server.  Faust routes a
    #: ``/customers/{id}`` request to the worker owning the customer's
    #: partition by this URL, so it must be unique per worker and resolvable
    #: by its peers (in a StatefulSet: the pod's name under the headless
    #: service).  Empty: ``http://WEB_HOST:WEB_PORT``, or the machine's host
    #: name when listening on every interface.
    web_canonical_url: str = ""
    #: Wall-clock seconds between idle-clock ticks: how soon silence is
    #: noticed when no events arrive at all.
    tick_seconds: float = 5.0
    #: How often a partition's changed states are written and its events
    #: acknowledged: longer writes fewer changelog messages for busy
    #: customers; a crash redoes at most this much work.
    flush_seconds: float = 1.0
    #: How long a fetch may wait on the broker for data.  Faust's default
    #: (1500 ms) adds over a second of latency to every alert.
    fetch_max_wait_ms: int = 100
    #: RocksDB block cache per table partition, in MiB: hot states stay in
    #: memory, the rest is read from disk.  Faust's default is 2 GiB per
    #: partition, which lets a worker grow with the data.
    rocksdb_cache_mb: int = 32
    #: RocksDB write buffer (memtable) per table partition, in MiB; two are kept.
    rocksdb_write_buffer_mb: int = 8
    #: How long the worker runs without reaching any broker before it exits
    #: non-zero, so that an orchestrator restarts it.
    broker_timeout_seconds: float = 60.0
    log_level: str = "warning"
    #: ``json``: one JSON object per line for log pipelines; ``text`` for people.
    log_format: str = "json"
    policy_file: str = ""
    #: When set, the look-up API needs ``Authorization: Bearer <token>``.
    api_token: str = field(default="", repr=False)
    #: How clients talk to the brokers: managed services (Confluent Cloud,
    #: MSK, Aiven) want ``SASL_SSL`` or ``SSL``.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    #: CA bundle that signed the brokers' certificates; empty: the system's.
    ssl_cafile: str = ""
    #: Client certificate and key, for brokers that authenticate clients by TLS.
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: str = field(default="", repr=False)

    @property
    def input_topics(self) -> tuple[str, str, str, str]:
        return (self.topic_purchases, self.topic_contacts, self.topic_complaints,
                self.topic_feedback)

    def topic_for(self, kind: str) -> str:
        """The topic events of input ``kind`` (``purchases`` ...) are read from."""
        return str(getattr(self, TOPIC_FIELDS[kind]))

    def kind_by_topic(self) -> dict[str, str]:
        """Input topic name -> its kind, in the order of :data:`TOPIC_FIELDS`."""
        return {self.topic_for(kind): kind for kind in TOPIC_FIELDS}

    @property
    def all_topics(self) -> tuple[str, ...]:
        return (*self.input_topics, self.topic_alerts, self.topic_dead_letters)

    @property
    def clock_topic(self) -> str:
        """Internal topic the idle clock ticks on (co-partitioned with the inputs)."""
        return f"{self.app_id}-clock"

    @property
    def state_changelog_topic(self) -> str:
        return f"{self.app_id}-{STATE_TABLE}-changelog"

    @property
    def internal_topics(self) -> tuple[str, str]:
        return (self.clock_topic, self.state_changelog_topic)

    @property
    def bootstrap_servers(self) -> str:
        """The broker URL as kafka-python wants it (``host:port[,host:port]``)."""
        return ",".join(
            part.split("://", 1)[-1] for part in self.broker_url.split(";") if part
        )

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol.endswith("SSL")

    @property
    def canonical_url(self) -> str:
        """The URL this worker announces to its peers for table routing."""
        if self.web_canonical_url:
            return self.web_canonical_url.rstrip("/")
        host = self.web_host if self.web_host not in _WILDCARD_HOSTS else socket.gethostname()
        return f"http://{host}:{self.web_port}"

    def policy(self) -> Policy:
        return load_policy(self.policy_file or None)

    def with_overrides(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return validate(Settings(**values))


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def _convert(name: str, raw: str, default: Any) -> Any:
    return convert_value(env_name(name), raw, default)


def convert_value(where: str, raw: str, default: Any) -> Any:
    """A variable's text as the type of its default; a bad one names ``where``."""
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}={raw!r}: expected true or false")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{where}={raw!r}: expected a whole number") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{where}={raw!r}: expected a number") from None
    return raw


#: Variables of the tools that read their own settings (checked by each tool).
TOOL_PREFIXES = (PREFIX + "SINK_",)


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment, rejecting unknown ``CHURNWATCH_`` names.

    Unknown names are rejected because a typo (``CHURNWATCH_BROKER_ULR``)
    otherwise silently falls back to a default and points at the wrong cluster.
    Names under a tool's own prefix (``CHURNWATCH_SINK_``) are that tool's to
    check, so one environment file can serve the worker and the tools.
    """
    env = os.environ if environ is None else environ
    known = {env_name(f.name): f for f in fields(Settings)}
    for key in env:
        if key.startswith(PREFIX) and key not in known and not key.startswith(TOOL_PREFIXES):
            # Compared without the prefix, which every name shares.
            near = difflib.get_close_matches(key.removeprefix(PREFIX).upper(),
                                             [f.name.upper() for f in fields(Settings)],
                                             n=1, cutoff=0.6)
            raise ConfigError(
                f"{key} is not a setting; did you mean {PREFIX}{near[0]}?" if near else
                f"{key} is not a setting; known settings: {', '.join(sorted(known))}"
            )
    values: dict[str, Any] = {}
    for key, f in known.items():
        if key in env:
            values[f.name] = _convert(f.name, env[key].strip(), f.default)
    return validate(Settings(**values))


#: Settings whose values are names from a fixed list, in the case the list
#: uses.  Kafka and Python take ``sasl_ssl`` and ``INFO`` alike, so we do too.
_CASE_FOLDED: dict[str, tuple[str, ...]] = {
    "log_level": LOG_LEVELS, "log_format": ("json", "text"), "broker_profile": PROFILES,
    "security_protocol": SECURITY_PROTOCOLS, "sasl_mechanism": SASL_MECHANISMS,
}


def _fold_case(s: Settings) -> Settings:
    """``s`` with list-valued settings in their listed case; others untouched,
    so an error still quotes what was written."""
    changes: dict[str, Any] = {}
    for name, allowed in _CASE_FOLDED.items():
        value = getattr(s, name)
        for choice in allowed:
            if value != choice and value.casefold() == choice.casefold():
                changes[name] = choice
    return replace(s, **changes) if changes else s


#: What ``churnwatch config`` shows instead of a secret that is set.
MASK = "********"


def describe_settings(s: Settings, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each setting's variable, effective value, source (``env`` or ``default``) and default.

    Secrets are the fields kept out of ``repr`` (``field(repr=False)``), so a
    new secret is masked here by the same mark that keeps it out of logs.
    """
    rows = []
    for f in fields(Settings):
        value = getattr(s, f.name)
        if not f.repr and value:
            value = MASK
        rows.append({"name": env_name(f.name), "value": value,
                     "source": "env" if env_name(f.name) in environ else "default",
                     "default": f.default})
    return rows


def validate(s: Settings) -> Settings:
    s = _fold_case(s)

    def bad(name: str, why: str) -> ConfigError:
        return ConfigError(f"{env_name(name)}={getattr(s, name)!r}: {why}")

    for url in s.broker_url.split(";"):
        if not re.fullmatch(r"(kafka://)?[A-Za-z0-9._-]+:\d{1,5}", url.strip()):
            raise bad("broker_url", "expected kafka://HOST:PORT (several separated by ';')")
    if s.broker_profile not in PROFILES:
        raise bad("broker_profile", f"expected one of {', '.join(PROFILES)}")
    if s.store not in STORES:
        raise bad("store", f"expected one of {', '.join(STORES)}")
    if s.store == "rocksdb://":
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            raise bad(
                "store", "the RocksDB store needs the rocksdict package: "
                "pip install 'churnwatch[rocksdb]', or use memory://"
            ) from None
    if not 1 <= s.partitions <= 1000:
        raise bad("partitions", "expected 1..1000")
    if not 1 <= s.replication <= 10:
        raise bad("replication", "expected 1..10")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", s.app_id):
        raise bad("app_id", "expected letters, digits, '.', '_' or '-'")
    for name in (*TOPIC_FIELDS.values(), *OUTPUT_TOPIC_FIELDS):
        if not _TOPIC_NAME.match(getattr(s, name)):
            raise bad(name, "not a valid Kafka topic name")
    if len(set(s.all_topics)) != len(s.all_topics):
        raise ConfigError("CHURNWATCH_TOPIC_*: every topic needs its own name")
    if not 0 < s.web_port < 65536:
        raise bad("web_port", "expected a TCP port 1..65535")
    if not 0.1 <= s.tick_seconds <= 3600:
        raise bad("tick_seconds", "expected 0.1..3600 seconds")
    if not 0.01 <= s.flush_seconds <= 60:
        raise bad("flush_seconds", "expected 0.01..60 seconds")
    if not 0 <= s.fetch_max_wait_ms <= 10000:
        raise bad("fetch_max_wait_ms", "expected 0..10000 milliseconds")
    if not 1 <= s.rocksdb_cache_mb <= 65536:
        raise bad("rocksdb_cache_mb", "expected 1..65536 MiB")
    if not 1 <= s.rocksdb_write_buffer_mb <= 4096:
        raise bad("rocksdb_write_buffer_mb", "expected 1..4096 MiB")
    if not 5 <= s.broker_timeout_seconds <= 86400:
        raise bad("broker_timeout_seconds", "expected 5..86400 seconds")
    if s.log_level not in LOG_LEVELS:
        raise bad("log_level", f"expected one of {', '.join(LOG_LEVELS)}")
    if s.log_format not in ("json", "text"):
        raise bad("log_format", "expected json or text")
    if s.policy_file and not Path(s.policy_file).is_file():
        raise bad("policy_file", "no such file")
    if s.web_canonical_url and not re.fullmatch(
            r"http://[A-Za-z0-9._-]+(:\d{1,5})?/?", s.web_canonical_url):
        raise bad("web_canonical_url", "expected http://HOST:PORT, reachable by the other workers")
    _validate_security(s, bad)
    return s


def _validate_security(s: Settings, bad: Callable[[str, str], ConfigError]) -> None:
    """Broker security settings, checked so a typo fails here, not as a broker timeout.

    Credentials set for a protocol that would ignore them are an error: they
    signal a misconfiguration that would otherwise send traffic in the clear.
    No message quotes a password.
    """
    protocol = env_name("security_protocol") + "=" + s.security_protocol
    if s.security_protocol not in SECURITY_PROTOCOLS:
        raise bad("security_protocol", f"expected one of {', '.join(SECURITY_PROTOCOLS)}")
    if s.sasl_mechanism not in SASL_MECHANISMS:
        raise bad("sasl_mechanism", f"expected one of {', '.join(SASL_MECHANISMS)}")
    if s.uses_sasl:
        for name in ("sasl_username", "sasl_password"):
            if not getattr(s, name):
                raise ConfigError(f"{env_name(name)} is required with {protocol}")
    else:
        for name in ("sasl_username", "sasl_password"):
            if getattr(s, name):
                raise ConfigError(f"{env_name(name)} is set but {protocol} does not use "
                                  "SASL; use SASL_SSL (or SASL_PLAINTEXT)")
    files = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    if not s.uses_ssl:
        for name in (*files, "ssl_key_password"):
            if getattr(s, name):
                raise ConfigError(f"{env_name(name)} is set but {protocol} does not use "
                                  "TLS; use SSL or SASL_SSL")
        return
    for name in files:
        if getattr(s, name) and not Path(getattr(s, name)).is_file():
            raise bad(name, "no such file")
    if s.ssl_keyfile and not s.ssl_certfile:
        raise ConfigError(f"{env_name('ssl_keyfile')} needs {env_name('ssl_certfile')} "
                          "(the client certificate it belongs to)")
    ssl_context(s)  # an unreadable CA or key fails now, naming the file's variable


def ssl_context(s: Settings) -> ssl.SSLContext | None:
    """The one TLS context every client (Faust, kafka-python, aiokafka) uses.

    Built from ``create_default_context`` so certificates and host names are
    verified against the CA bundle, as managed Kafka services expect.
    """
    if not s.uses_ssl:
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=s.ssl_cafile or None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{env_name('ssl_cafile')}={s.ssl_cafile!r}: not a readable PEM "
                          f"CA bundle ({exc.__class__.__name__})") from None
    if s.ssl_certfile:
        password = s.ssl_key_password
        try:
            # A callable, so an encrypted key never opens an interactive prompt.
            ctx.load_cert_chain(s.ssl_certfile, s.ssl_keyfile or None,
                                password=lambda: password)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{env_name('ssl_certfile')}={s.ssl_certfile!r}, {env_name('ssl_keyfile')}="
                f"{s.ssl_keyfile!r}: cannot load the client certificate and key "
                f"({exc.__class__.__name__}; is {env_name('ssl_key_password')} right?)"
            ) from None
    return ctx


def kafka_client_options(s: Settings) -> dict[str, Any]:
    """Connection keyword arguments for kafka-python and aiokafka clients.

    Both libraries take the same names, so every tool that builds its own
    client (topic admin, ``explain``, the demo, benchmarks) connects exactly
    as the worker does: ``KafkaConsumer(**kafka_client_options(s), ...)``.
    """
    options: dict[str, Any] = {"bootstrap_servers": s.bootstrap_servers,
                               "security_protocol": s.security_protocol}
    if s.uses_ssl:
        options["ssl_context"] = ssl_context(s)
    if s.uses_sasl:
        options.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username,
                       sasl_plain_password=s.sasl_password)
    return options
