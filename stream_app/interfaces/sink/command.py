"""``churnwatch sink webhook URL``: the command line of the sink."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from typing import Any

from ...core.settings import ConfigError, Settings
from .config import (
    FORMATS,
    HUBSPOT_IDENTITIES,
    SinkSettings,
    env_name,
    from_env,
    is_sink_variable,
    read_secret_file,
)

DESCRIPTION = """\
Read the churn-alerts topic on CHURNWATCH_BROKER_URL and POST each alert to URL,
for tools that cannot read Kafka (Braze, HubSpot, Customer.io, a CRM, Slack).

Delivery is at least once: the consumer offset is committed only after a 2xx
answer, so a crash delivers the alert under way again; each request carries
the alert's id as its Idempotency-Key header (and in the body) for the endpoint
to de-duplicate.  408, 429, 5xx, time-outs and refused connections are retried
with exponential back-off and jitter (Retry-After honoured); other 4xx are not.
An alert not delivered after --max-attempts tries, or refused, goes to the
dead-letters topic with the reason, and the sink moves on.  SIGTERM or Ctrl-C
finishes the delivery under way, commits and exits; a second one stops at once.

formats (--format):
  raw      the alert as the topic has it (schemas/churn-alerts.v2.json)
  braze    Braze POST /users/track: {"events": [{external_id, name, time,
           properties}]}; set CHURNWATCH_SINK_AUTHORIZATION='Bearer <REST API key>'
  hubspot  HubSpot POST /events/v3/send (custom behavioural events): eventName,
           objectId or email (--hubspot-identity), occurredAt, properties;
           CHURNWATCH_SINK_AUTHORIZATION='Bearer <private app token>'
  slack    a Slack incoming-webhook message (Block Kit) for a team channel

signing: with CHURNWATCH_SINK_SECRET (or --secret-file) every request carries
  Churnwatch-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
  (see README, "Pushing alerts to marketing tools", to verify it).

Every option can also be set by its CHURNWATCH_SINK_* variable (--max-attempts:
CHURNWATCH_SINK_MAX_ATTEMPTS, URL: CHURNWATCH_SINK_URL); an option wins over its
variable.  The broker, topics and logging are the worker's CHURNWATCH_* settings.
"""

EPILOG = """\
examples:
  churnwatch sink webhook https://crm.example.com/hooks/churn
  CHURNWATCH_SINK_AUTHORIZATION="Bearer $BRAZE_KEY" churnwatch sink webhook \\
      https://rest.iad-01.braze.com/users/track --format braze
  churnwatch sink webhook https://api.hubapi.com/events/v3/send --format hubspot \\
      --event-name pe1234567_churn_alert --hubspot-identity email
  churnwatch sink webhook "$SLACK_WEBHOOK_URL" --format slack --group team-alerts
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sink", help="push the churn alerts to an HTTP endpoint (webhook)",
                       description="Deliver the churn alerts to systems outside Kafka.")
    kinds = p.add_subparsers(dest="sink_kind", metavar="KIND", required=True)
    w = kinds.add_parser("webhook", help="POST each alert to URL, at least once",
                         description=DESCRIPTION, epilog=EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("url", nargs="?", metavar="URL",
                   help="the endpoint (default $CHURNWATCH_SINK_URL)")
    w.add_argument("--format", choices=FORMATS, type=str.lower,
                   help="the body's shape (raw)")
    w.add_argument("--group", metavar="ID",
                   help="consumer group; sinks sharing one share the alerts, each group "
                   "receives all of them (<CHURNWATCH_APP_ID>-sink-<format>)")
    w.add_argument("--from-beginning", action="store_const", const=True,
                   help="a new group starts at the oldest alert the topic keeps, not at "
                   "the next one; a group that has committed resumes where it stopped")
    w.add_argument("--max-attempts", type=int, metavar="N",
                   help="tries per alert before it is dead-lettered (8)")
    w.add_argument("--backoff-seconds", type=float, metavar="S",
                   help="the first retry's delay, doubled at each next one (0.5)")
    w.add_argument("--max-delay-seconds", type=float, metavar="S",
                   help="the longest delay between tries, and of a Retry-After (30)")
    w.add_argument("--timeout-seconds", type=float, metavar="S",
                   help="one attempt's limit (10)")
    w.add_argument("--event-name", metavar="NAME",
                   help="braze/hubspot: the event's name (churn_alert); HubSpot's is "
                   "pe<portal id>_<name>")
    w.add_argument("--hubspot-identity", choices=HUBSPOT_IDENTITIES,
                   help="hubspot: customer_id is the contact's record id (objectId) or "
                   "e-mail (objectId)")
    w.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                   help="an extra request header (may be repeated); credentials go in "
                   "CHURNWATCH_SINK_AUTHORIZATION, out of the process list")
    w.add_argument("--secret-file", metavar="FILE",
                   help="the signing secret, read from FILE (default $CHURNWATCH_SINK_SECRET)")
    w.add_argument("--authorization-file", metavar="FILE",
                   help="the Authorization header's value, read from FILE (default "
                   "$CHURNWATCH_SINK_AUTHORIZATION)")
    w.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus /metrics on this port (0: none)")
    w.add_argument("--progress-seconds", type=float, metavar="S",
                   help="seconds between progress lines (30)")


def core_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without the sink's own variables, for the worker's settings."""
    return {k: v for k, v in environ.items() if not is_sink_variable(k)}


def sink_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> SinkSettings:
    options: dict[str, Any] = {
        "sink_url": args.url, "sink_format": args.format, "sink_group": args.group,
        "sink_from_beginning": args.from_beginning, "sink_max_attempts": args.max_attempts,
        "sink_backoff_seconds": args.backoff_seconds,
        "sink_max_delay_seconds": args.max_delay_seconds,
        "sink_timeout_seconds": args.timeout_seconds, "sink_event_name": args.event_name,
        "sink_hubspot_identity": args.hubspot_identity,
        "sink_headers": "\n".join(args.header) if args.header else None,
        "sink_metrics_port": args.metrics_port, "sink_progress_seconds": args.progress_seconds,
    }
    if args.secret_file:
        options["sink_secret"] = read_secret_file(args.secret_file, "--secret-file")
    if args.authorization_file:
        options["sink_authorization"] = read_secret_file(args.authorization_file,
                                                         "--authorization-file")
    return from_env(environ, options)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ...engine import logs
    from .runner import serve

    try:
        sink = sink_settings(args, os.environ)
    except ConfigError as exc:
        print(f"churnwatch sink: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, settings.log_format)
    if sink.sink_metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(sink.sink_metrics_port, addr=settings.web_host)
        except OSError as exc:
            print(f"churnwatch sink: --metrics-port {sink.sink_metrics_port} (or "
                  f"{env_name('sink_metrics_port')}): cannot listen ({exc.strerror})",
                  file=sys.stderr)
            return 2
    try:
        return asyncio.run(serve(settings, sink))
    except asyncio.CancelledError:  # a second signal: stopped at once
        return 130
