"""The sink's options: command-line options over ``CHURNWATCH_SINK_*`` variables.

Every option has a variable, named as the project's settings are
(``CHURNWATCH_`` + the field's name in capitals), so a container can be
configured without arguments.  An option given on the command line wins over
its variable.  The secrets (the signing secret, the ``Authorization`` header)
come only from variables or files, never from arguments, which other users
of the machine can read in the process list.

The broker, topics, group id prefix and logging are the worker's own
settings (:mod:`stream_app.core.settings`); only what is the sink's own is
here.  A bad value fails at start-up with :class:`~stream_app.core.settings.ConfigError`
naming the option or variable and what to give instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...core.settings import PREFIX, ConfigError, convert_value

SINK_PREFIX = PREFIX + "SINK_"
FORMATS = ("raw", "braze", "hubspot", "slack")
HUBSPOT_IDENTITIES = ("objectId", "email")
#: Request headers the sink sets itself; ``--header`` may not replace them.
OWN_HEADERS = frozenset({"content-type", "idempotency-key", "churnwatch-signature",
                         "authorization", "content-length", "host"})
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """What the webhook sink needs beyond the worker's settings."""

    #: Where each alert is POSTed.
    sink_url: str = ""
    sink_format: str = "raw"
    #: The consumer group; empty: ``<CHURNWATCH_APP_ID>-sink-<format>``, so two
    #: sinks of different formats each receive every alert.
    sink_group: str = ""
    #: A new group starts at the oldest alert kept, not at the next one.
    sink_from_beginning: bool = False
    #: Tries per alert (the first included) before it is dead-lettered.
    sink_max_attempts: int = 8
    #: The first retry's delay; each next one doubles, up to ``max_delay``.
    sink_backoff_seconds: float = 0.5
    sink_max_delay_seconds: float = 30.0
    #: One attempt's limit: connecting, sending and reading the answer.
    sink_timeout_seconds: float = 10.0
    #: The Braze or HubSpot event name (HubSpot's is ``pe<portal id>_...``).
    sink_event_name: str = "churn_alert"
    #: HubSpot: the alert's ``customer_id`` is the contact's record id or e-mail.
    sink_hubspot_identity: str = "objectId"
    #: Extra request headers, ``Name: value`` separated by newlines.
    sink_headers: str = ""
    #: 0: no metrics page; else Prometheus ``/metrics`` on this port.
    sink_metrics_port: int = 0
    #: Seconds between progress lines.
    sink_progress_seconds: float = 30.0
    #: HMAC-SHA256 key of the ``Churnwatch-Signature`` header; empty: unsigned.
    sink_secret: str = field(default="", repr=False)
    #: The ``Authorization`` header's value, e.g. ``Bearer <Braze REST API key>``.
    sink_authorization: str = field(default="", repr=False)

    @property
    def headers(self) -> dict[str, str]:
        out = {}
        for line in self.sink_headers.splitlines():
            if line.strip():
                name, _, value = line.partition(":")
                out[name.strip()] = value.strip()
        return out

    def group(self, app_id: str) -> str:
        return self.sink_group or f"{app_id}-sink-{self.sink_format}"


#: Fields that are secrets: no option, only a variable (or a ``--*-file``).
SECRETS = frozenset(f.name for f in fields(SinkSettings) if not f.repr)


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def option_name(field_name: str) -> str:
    """The command-line option of a field (the URL is the positional ``URL``)."""
    if field_name == "sink_url":
        return "URL"
    return "--" + field_name.removeprefix("sink_").replace("_", "-")


def is_sink_variable(name: str) -> bool:
    return name.startswith(SINK_PREFIX)


def from_env(environ: Mapping[str, str],
             options: Mapping[str, Any] | None = None) -> SinkSettings:
    """The sink's settings: ``options`` (field -> value, None: not given) over
    ``CHURNWATCH_SINK_*`` variables over the defaults, validated.

    An unknown ``CHURNWATCH_SINK_`` name is refused, as the worker's settings
    refuse theirs: a typo would otherwise fall back to a default in silence.
    """
    known = {env_name(f.name): f for f in fields(SinkSettings)}
    for key in environ:
        if is_sink_variable(key) and key not in known:
            near = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            raise ConfigError(f"{key} is not a sink setting" + (
                f"; did you mean {near[0]}?" if near else
                f"; known: {', '.join(sorted(known))}"))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, f in known.items():
        if key in environ:
            values[f.name] = convert_value(key, environ[key].strip(), f.default)
            sources[f.name] = key
    for name, value in (options or {}).items():
        if value is not None:
            values[name] = value
            sources[name] = option_name(name)
    return validate(SinkSettings(**values), sources)


def read_secret_file(path: str, option: str) -> str:
    """A secret kept in a file (a mounted Kubernetes secret): its text, stripped."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot read it ({exc.strerror})") from None
    if not text:
        raise ConfigError(f"{option} {path}: the file is empty")
    return text


def validate(s: SinkSettings, sources: Mapping[str, str] | None = None) -> SinkSettings:
    """``s`` checked; ``sources`` names where each value came from, for the message."""
    where = dict(sources or {})

    def bad(name: str, why: str) -> ConfigError:
        source = where.get(name, env_name(name))
        shown = "(set)" if name in SECRETS else repr(getattr(s, name))
        sep = "=" if source.startswith(PREFIX) else " "
        return ConfigError(f"{source}{sep}{shown}: {why}")

    if not s.sink_url:
        raise ConfigError(f"give the endpoint: churnwatch sink webhook URL (or set "
                          f"{env_name('sink_url')})")
    url = urlsplit(s.sink_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise bad("sink_url", "expected an http:// or https:// URL, e.g. "
                  "https://rest.iad-01.braze.com/users/track")
    fmt = s.sink_format.lower()
    if fmt not in FORMATS:
        raise bad("sink_format", f"expected one of {', '.join(FORMATS)}")
    if s.sink_group and not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", s.sink_group):
        raise bad("sink_group", "expected letters, digits, '.', '_' or '-'")
    if not 1 <= s.sink_max_attempts <= 100:
        raise bad("sink_max_attempts", "expected 1..100 (1: no retries)")
    if not 0.01 <= s.sink_backoff_seconds <= 600:
        raise bad("sink_backoff_seconds", "expected 0.01..600 seconds")
    if not s.sink_backoff_seconds <= s.sink_max_delay_seconds <= 3600:
        raise bad("sink_max_delay_seconds",
                  f"expected {s.sink_backoff_seconds:g}..3600 seconds (at least the back-off)")
    if not 0.1 <= s.sink_timeout_seconds <= 600:
        raise bad("sink_timeout_seconds", "expected 0.1..600 seconds")
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", s.sink_event_name):
        raise bad("sink_event_name", "expected letters, digits, '.', '_', ':' or '-', "
                  "e.g. churn_alert (HubSpot: pe<portal id>_churn_alert)")
    if s.sink_hubspot_identity not in HUBSPOT_IDENTITIES:
        raise bad("sink_hubspot_identity", f"expected one of {', '.join(HUBSPOT_IDENTITIES)}")
    if not 0 <= s.sink_metrics_port < 65536:
        raise bad("sink_metrics_port", "expected a TCP port 1..65535, or 0 for none")
    if not 1 <= s.sink_progress_seconds <= 86400:
        raise bad("sink_progress_seconds", "expected 1..86400 seconds")
    for line in s.sink_headers.splitlines():
        if not line.strip():
            continue
        name, colon, _ = line.partition(":")
        if not colon or not _HEADER_NAME.match(name.strip()):
            raise bad("sink_headers", f"{line.strip()!r}: expected 'Name: value'")
        if name.strip().lower() in OWN_HEADERS:
            raise bad("sink_headers", f"{name.strip()!r} is set by the sink itself"
                      + ("; put it in CHURNWATCH_SINK_AUTHORIZATION (a variable, out of the "
                         "process list)" if name.strip().lower() == "authorization" else ""))
    if "\n" in s.sink_authorization or "\r" in s.sink_authorization:
        raise bad("sink_authorization", "one line, e.g. 'Bearer <token>'")
    return replace(s, sink_format=fmt) if fmt != s.sink_format else s
