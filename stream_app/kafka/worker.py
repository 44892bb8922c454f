"""A worker's Faust objects, built from the settings (nothing is built at import).

:func:`build_worker` makes the app with its topics, table, agents, timers
and Prometheus sensor; the web views are mounted on it separately
(:func:`stream_app.interfaces.web.mount_web`).  Each call makes a new,
independent set, so tests build what they need instead of patching modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from ..core.policy import Policy
from ..core.settings import Settings
from ..engine.processing import Processor
from .agents import Agents, attach_agents
from .app import ChurnwatchApp
from .faust_config import app_options
from .monitor import LeanPrometheusMonitor, install_monitor
from .tables import make_state_table
from .topics import Topics, make_topics


@dataclass(frozen=True)
class Worker:
    settings: Settings
    policy: Policy
    app: ChurnwatchApp
    topics: Topics
    #: The ``customer_to_state`` table.
    table: Any
    agents: Agents
    monitor: LeanPrometheusMonitor

    @property
    def processor(self) -> Processor:
        return self.agents.processor


def build_worker(settings: Settings, *, registry: CollectorRegistry = REGISTRY) -> Worker:
    """The worker's app and everything on it; Faust's metrics go into ``registry``."""
    policy = settings.policy()
    app = ChurnwatchApp(settings.app_id, fetch_max_wait_ms=settings.fetch_max_wait_ms,
                        **app_options(settings))
    topics = make_topics(app, settings)
    table = make_state_table(app, settings)
    agents = attach_agents(app, settings, policy, topics, table)
    monitor = install_monitor(app, registry)
    return Worker(settings=settings, policy=policy, app=app, topics=topics, table=table,
                  agents=agents, monitor=monitor)
