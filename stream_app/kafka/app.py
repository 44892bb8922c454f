"""The Faust app object, alone (topics, tables and agents live beside it)."""

from __future__ import annotations

from ..core.settings import from_env
from .faust_config import app_options
from .transport import ChurnwatchApp

settings = from_env()
policy = settings.policy()
app = ChurnwatchApp(settings.app_id, **app_options(settings))
