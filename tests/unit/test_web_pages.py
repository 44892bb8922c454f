"""Faust's own web pages stay off, and Faust's environment variables change nothing."""

from __future__ import annotations

import faust
import pytest

from stream_app.core.settings import Settings
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
