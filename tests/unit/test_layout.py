"""The package's layout is its architecture: layers, and imports that only point down.

``core`` (the pure domain) < ``engine`` (the event-time processor) < ``kafka``
(the Faust and Kafka adapter) < ``offline`` (tools over a broker) <
``interfaces`` (what people and programs talk to).  A module may import its
own layer and the layers below it, never one above; the core and the engine
import no Faust and no Kafka client, so they can be read, tested and
compiled without either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stream_app

PACKAGE = Path(stream_app.__file__).parent
LAYERS = ("core", "engine", "kafka", "offline", "interfaces")
#: Third-party packages a layer must not import, even inside a function.
FORBIDDEN = {
    "core": {"faust", "mode", "aiokafka", "kafka", "aiohttp", "prometheus_client"},
    "engine": {"faust", "mode", "aiokafka", "kafka", "aiohttp"},
}


def _modules() -> list[tuple[str, Path]]:
    return [(path.relative_to(PACKAGE).parts[0], path) for path in sorted(PACKAGE.rglob("*.py"))
            if len(path.relative_to(PACKAGE).parts) > 1]


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every module the file imports, absolute, with its line."""
    return _resolve(path.read_text(encoding="utf-8"),
                    ["stream_app", *path.relative_to(PACKAGE).with_suffix("").parts[:-1]])


def _resolve(source: str, here: list[str]) -> list[tuple[str, int]]:
    """``here``: the package the source sits in, as its dotted parts."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:  # from . import a, b: each name may be a module
                found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((module, node.lineno))
    return found


def test_the_package_is_its_layers_and_nothing_else() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py")
                   if p.name not in {"__init__.py", "__main__.py"})
    assert loose == [], "every module belongs to a layer"
    assert sorted(p.name for p in PACKAGE.iterdir()
                  if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_only_point_down(layer: str) -> None:
    rank = LAYERS.index(layer)
    upward = []
    for own, path in _modules():
        if own != layer:
            continue
        for name, line in _imports(path):
            parts = name.split(".")
            if parts[0] == "stream_app" and len(parts) > 1 and parts[1] in LAYERS:
                if LAYERS.index(parts[1]) > rank:
                    upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
            elif parts[0] in FORBIDDEN.get(layer, set()):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert upward == []


def test_relative_imports_resolve_to_their_layer() -> None:
    """The rule above must be able to fail: an upward import inside a function,
    relative or not, is seen for what it is."""
    source = ("from ..state import CustomerState\n"
              "def f():\n"
              "    from ...kafka import app\n"
              "    import faust\n"
              "    from .. import model\n")
    names = [name for name, _ in _resolve(source, ["stream_app", "core", "signals"])]
    assert names == ["stream_app.core.state", "stream_app.kafka", "faust",
                     "stream_app.core.model"]
