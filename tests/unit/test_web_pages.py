"""Faust's own web pages stay off, Faust's environment variables change nothing, and
readiness can be asked before the consumer has started."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest
from faust.exceptions import ConsumerNotStarted

from stream_app.core.settings import Settings
from stream_app.interfaces.web import has_partitions
from stream_app.kafka.app import ChurnwatchApp
from stream_app.kafka.faust_config import FAUST_PAGES_OFF, app_options


def test_faust_page_switches_in_the_environment_are_ignored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Faust lets these override settings given in code; debug would turn on
    # the statistics and graph pages through their defaults.
    for name in ("APP_WEB_TABLES_ENABLED", "APP_WEB_ROUTER_ENABLED", "APP_WEB_STATS_ENABLED",
                 "APP_WEB_GRAPH_ENABLED", "APP_WEB_METRICS_ENABLED", "APP_DEBUG"):
        monkeypatch.setenv(name, "true")
    monkeypatch.setenv("WEB_PORT", "7777")
    conf = faust.Settings("pages", **app_options(Settings()))
    assert {name: getattr(conf, name) for name in FAUST_PAGES_OFF} == FAUST_PAGES_OFF
    # The one settings object decides: CHURNWATCH_WEB_PORT's default, not WEB_PORT.
    assert conf.debug is False and conf.web_port == Settings().web_port


async def test_readiness_before_the_consumer_has_started_says_no_partitions(
        tmp_path: Path) -> None:
    # The web server answers probes from the first moment of start-up; the
    # consumer's assignment then raised, and /ready answered 500.
    settings = Settings().with_overrides(store="memory://", data_dir=str(tmp_path),
                                         app_id="ready-test")
    app = ChurnwatchApp(settings.app_id, loop=asyncio.get_running_loop(),
                        **app_options(settings))
    with pytest.raises(ConsumerNotStarted):
        app.consumer.assignment()
    assert has_partitions(app) is False
