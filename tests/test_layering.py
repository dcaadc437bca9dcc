"""The package's layers: data flows one way, no import cycles, importing changes no global state.

``attention`` imports nothing else of protperf; ``data`` neither model, analysis nor inference;
no library layer imports the command side (runtime, reporting, cli, training, app); only
``app`` imports ``app``; ``transfer`` (pretrained Transformer -> Performer recovery) is imported
by scripts only. Imports inside functions count too, so a cycle cannot hide behind a
function-local import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import protperf

PACKAGE = Path(protperf.__file__).parent
# layer -> the protperf layers it must not import. Bottom to top: attention; data; model;
# checkpoint; analysis and inference; runtime (training runtime) and reporting; cli (the Hydra
# home); training (the library ``train``); app.
COMMAND_SIDE = {"runtime", "reporting", "cli", "training", "app"}
FORBIDDEN = {
    "attention": {"data", "model", "checkpoint", "analysis", "inference", "structured",
                  "pretrained", "transfer"} | COMMAND_SIDE,
    "data": {"attention", "model", "checkpoint", "analysis", "inference", "pretrained",
             "transfer"} | COMMAND_SIDE,
    "model": {"checkpoint", "analysis", "inference", "pretrained", "transfer"} | COMMAND_SIDE,
    "checkpoint": {"analysis", "inference", "pretrained", "transfer"} | COMMAND_SIDE,
    "analysis": {"inference", "pretrained", "transfer"} | COMMAND_SIDE,
    "inference": {"analysis", "pretrained", "transfer"} | COMMAND_SIDE,
    "pretrained": {"analysis", "inference", "transfer"} | COMMAND_SIDE,
    "transfer": COMMAND_SIDE,
    "runtime": {"analysis", "inference", "reporting", "cli", "training", "app", "transfer"},
    "reporting": {"runtime", "cli", "training", "app", "transfer"},
    "cli": {"reporting", "training", "app", "transfer"},
    "training": {"analysis", "inference", "pretrained", "reporting", "app", "transfer"},
    # protperf.hf: Performer attention registered with transformers (attention + name tables)
    "hf": {"data", "model", "analysis", "inference", "structured", "pretrained",
           "transfer"} | COMMAND_SIDE,
}

#: Standard-library-only leaves every layer may use: the one atomic writer.
LEAVES = {"protperf.checkpoint.atomic"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def protperf_imports(path: Path) -> set[str]:
    """Every protperf module ``path`` imports (module level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("protperf"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("protperf"))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in protperf_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own submodules (``__init__`` re-exports)
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer):
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module.split(".")[1:2] == [layer]
        for target in targets
        if target.split(".")[1:2] and target.split(".")[1] in FORBIDDEN[layer]
        and target not in LEAVES
    )
    assert not wrong, wrong


def test_importing_every_module_changes_no_global_state():
    """The matplotlib backend (and the root logging level) are the same before and after."""
    names = sorted(import_graph())
    code = (
        "import logging, matplotlib, importlib\n"
        "before = (matplotlib.get_backend(), logging.getLogger().level)\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "after = (matplotlib.get_backend(), logging.getLogger().level)\n"
        "assert before == after, (before, after)\n"
    )
    env = {"MPLBACKEND": "svg", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
