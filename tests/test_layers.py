"""The direction of dependencies, read from the source with ``ast`` (nothing is imported).

Rules (DESIGN.md, "Layout and the direction of dependencies"):

- the core (``affetto/``, every module, the CLI included) imports no wing
  (``affetto.daemon``, ``affetto.models``, ``affetto.export``) and no torch;
- ``daemon`` imports neither ``models`` nor ``export`` nor torch;
- ``models`` imports neither ``daemon`` nor ``export``;
- ``export`` may import ``models``, never ``daemon``, and never a training
  module (``models.train``, ``models.musegan.train``): it reads checkpoints
  through ``models.checkpoint`` and the model families;
- ``bench`` (installed as ``affetto.bench``) may import anything; nothing imports it
  (``affetto bench`` runs it in a process of its own).

Inside the daemon, each MIDI backend (JACK's ``jackports``, ``jacktime`` and
``jackoutput``; ``rtmidiports``) imports
neither the other nor the factory that chooses between them (``ports``), so
the ports form no circle and a new backend touches only the factory. Each
clock source imports the clock interface, never another source; a
conductor mode decides from the seed
buffer alone, never reaching into the conductor, the scheduler or the clock.
The status page's server reads the snapshot the conductor publishes and
imports neither the conductor, the scheduler nor the ports; the conductor
imports no part of that server.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``,
relative ones resolved to their absolute names, and ``importlib.import_module``
with a literal name. The front door (``affetto/cli.py``) finds the wings'
commands by name at call time; its table ``WING_COMMANDS`` is the one place
the core may name a wing module, and this test holds it to that place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"affetto": "affetto", "daemon": "affetto.daemon", "models": "affetto.models", "export": "affetto.export",
          "bench": "affetto.bench"}
WINGS = ("affetto.daemon", "affetto.models", "affetto.export")
FORBIDDEN = {
    "affetto": (*WINGS, "affetto.bench", "torch"),
    "affetto.daemon": ("affetto.models", "affetto.export", "affetto.bench", "torch"),
    "affetto.models": ("affetto.daemon", "affetto.export", "affetto.bench"),
    "affetto.export": ("affetto.daemon", "affetto.models.train", "affetto.models.musegan.train", "affetto.bench"),
    "affetto.bench": (),
}

APART = {  # module -> modules it must not import (inside a wing)
    "affetto.daemon.jackports": ("affetto.daemon.rtmidiports", "affetto.daemon.ports"),
    "affetto.daemon.jacktime": ("affetto.daemon.rtmidiports", "affetto.daemon.ports"),
    "affetto.daemon.jackoutput": ("affetto.daemon.rtmidiports", "affetto.daemon.ports"),
    "affetto.daemon.rtmidiports": (
        "affetto.daemon.jackports", "affetto.daemon.jacktime", "affetto.daemon.jackoutput", "affetto.daemon.ports"
    ),
    **{f"affetto.daemon.clocks.{source}": ("affetto.daemon.clocks.internal", "affetto.daemon.clocks.midiclock",
                                           "affetto.daemon.clocks.link")
       for source in ("internal", "midiclock", "link")},
    "affetto.daemon.modes": ("affetto.daemon.conductor", "affetto.daemon.scheduler", "affetto.daemon.clocks"),
    # the status page reads the conductor's published snapshot; it never reaches into the real-time path,
    # and the conductor never reaches into the page's server
    **{f"affetto.daemon.status_{part}": ("affetto.daemon.conductor", "affetto.daemon.scheduler",
                                         "affetto.daemon.jackports", "affetto.daemon.rtmidiports",
                                         "affetto.daemon.service")
       for part in ("http", "view")},
    "affetto.daemon.status_snapshot": ("affetto.daemon.conductor", "affetto.daemon.status_http",
                                       "affetto.daemon.status_view"),
    "affetto.daemon.conductor": ("affetto.daemon.status_http", "affetto.daemon.status_view"),
}  # a rule for a package holds for every module in it


def module_name(path: Path) -> tuple[str, str, bool]:
    """(layer, dotted module name, is a package's __init__) of a source file."""
    rel = path.relative_to(ROOT)
    layer = LAYERS[rel.parts[0]]
    parts = [*layer.split("."), *rel.parts[1:-1]]
    is_package = path.name == "__init__.py"
    if not is_package:
        parts.append(path.stem)
    return layer, ".".join(parts), is_package


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]  # `from affetto import daemon`
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def names(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(path: Path, source: str | None = None) -> list[str]:
    layer, module, is_package = module_name(path)
    source = path.read_text(encoding="utf-8") if source is None else source
    rel = path.relative_to(ROOT)
    forbidden = FORBIDDEN[layer] + tuple(name for key, apart in APART.items() if names(module, (key,))
                                         for name in apart)
    return [f"{rel}:{line}: {module} imports {name}"
            for line, name in imports_of(source, module, is_package) if names(name, forbidden)]


def sources() -> list[Path]:
    return sorted(p for folder in LAYERS for p in (ROOT / folder).rglob("*.py"))


def test_every_layer_is_found():
    layers = {module_name(p)[0] for p in sources()}
    assert layers == set(LAYERS.values())
    assert len(sources()) > 60


def test_imports_run_in_the_agreed_direction():
    bad = [v for path in sources() for v in violations(path)]
    assert not bad, "imports against the direction of dependencies:\n" + "\n".join(bad)


def test_the_core_names_wing_modules_only_in_the_command_table():
    named = []
    for path in (ROOT / "affetto").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        table = {id(node) for assign in ast.walk(tree) if isinstance(assign, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "WING_COMMANDS" for t in assign.targets)
                 for node in ast.walk(assign.value)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in table
                    and names(node.value.partition(":")[0], WINGS) and " " not in node.value):
                named.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert not named, "the core names wing modules outside affetto/cli.py's WING_COMMANDS:\n" + "\n".join(named)


@pytest.mark.parametrize(
    ("file", "line", "caught"),
    [
        ("affetto/generate.py", "from affetto.daemon.engine import Engine", True),
        ("affetto/runtime/engine.py", "def f():\n    import torch", True),
        ("affetto/runtime/engine.py", "def f():\n    from ..models import train", True),
        ("affetto/cli.py", "import importlib\nimportlib.import_module('affetto.export.export')", True),
        ("daemon/service.py", "from affetto.models.checkpoint import load_checkpoint", True),
        ("daemon/service.py", "from torch import nn", True),
        ("daemon/conductor.py", "from affetto import export", True),
        ("models/train.py", "from affetto.daemon import generator", True),
        ("models/evaluation/run.py", "from ...daemon.generator import BarRequest", True),
        ("models/train.py", "from affetto.export.graph import build_graph", True),
        ("export/export.py", "from affetto.daemon.config import DaemonConfig", True),
        ("export/export.py", "from affetto.models.transformer import EmotionTransformer", False),
        ("export/export.py", "def f():\n    from affetto.models.train import TrainConfig", True),
        ("export/musegan.py", "from affetto.models.musegan.train import validate", True),
        ("export/musegan.py", "from affetto.models import checkpoint", False),
        ("daemon/service.py", "from affetto.runtime import load_model", False),
        ("daemon/jackports.py", "def f():\n    from affetto.daemon.ports import open_ports", True),
        ("daemon/rtmidiports.py", "from affetto.daemon import jackports", True),
        ("daemon/jacktime.py", "from affetto.daemon.rtmidiports import MidiPorts", True),
        ("daemon/jackoutput.py", "from affetto.daemon import ports", True),
        ("daemon/rtmidiports.py", "from affetto.daemon.jackoutput import JackOutput", True),
        ("daemon/rtmidiports.py", "from affetto.daemon.portnames import find_port", False),
        ("daemon/clocks/link.py", "from affetto.daemon.clocks.midiclock import MidiClockFollower", True),
        ("daemon/clocks/link.py", "from affetto.daemon.clocks.base import Clock", False),
        ("daemon/modes/harmonise.py", "from affetto.daemon.conductor import Conductor", True),
        ("daemon/modes/__init__.py", "from affetto.daemon.clocks import Clock", True),
        ("daemon/modes/lead.py", "from affetto.daemon.seed import SeedBuffer", False),
        ("daemon/status_http.py", "from affetto.daemon.scheduler import Scheduler", True),
        ("daemon/status_view.py", "from affetto.daemon.conductor import Conductor", True),
        ("daemon/conductor.py", "from affetto.daemon.status_http import open_status_page", True),
        ("daemon/status_http.py", "from affetto.daemon.status_snapshot import StatusBoard", False),
        ("affetto/cli.py", "from affetto.bench import bench_engine", True),
        ("bench/bench_engine.py", "from affetto.models.checkpoint import load_checkpoint", False),
    ],
)
def test_an_added_import_against_the_direction_is_caught(file, line, caught):
    path = ROOT / file
    source = path.read_text(encoding="utf-8") + "\n\n" + line + "\n"
    assert bool(violations(path, source)) == caught


# ---- no circles -------------------------------------------------------------------------
def import_graph(extra: dict[Path, str] | None = None) -> dict[str, set[str]]:
    """Module -> the project's modules it imports (every import counts, as above)."""
    extra = extra or {}
    files = {module_name(p)[1]: p for p in sources()}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        _, _, is_package = module_name(path)
        source = path.read_text(encoding="utf-8") + "\n\n" + extra.get(path, "")
        graph[module] = {name for _, name in imports_of(source, module, is_package)
                         if name in files and name != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others():
    found = cycles(import_graph())
    assert not found, "circles of imports:\n" + "\n".join(" <-> ".join(group) for group in found)


@pytest.mark.parametrize(
    ("file", "line", "caught"),
    [
        ("affetto/analysis/attributes.py", "def f():\n    from affetto.tokens.vocab import Vocabulary", True),
        ("affetto/music/notes.py", "from affetto.runtime import engine", True),
        ("affetto/runtime/engine.py", "from affetto.music.notes import Note", False),
    ],
)
def test_an_added_circle_is_caught(file, line, caught):
    assert bool(cycles(import_graph({ROOT / file: line}))) == caught
