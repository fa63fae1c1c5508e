"""The package's import graph: no circle, and each layer imports only the layers below it.

Every import counts, those inside functions and under ``TYPE_CHECKING`` too: a circle that only
a late import hides is still a circle to a reader following the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vllm_multimodal_embeddings

PACKAGE = Path(vllm_multimodal_embeddings.__file__).parent
NAME = "vllm_multimodal_embeddings"

# Bottom to top. A module may import its own layer and the layers before it, never after it.
LAYERS: list[set[str]] = [
    {"_version", "_constants", "_redact", "_exceptions", "_types", "_settings", "_closing"},
    {"transport"},
    {"inputs"},
    {"profiles", "protocol"},
    {"embeddings", "reranking"},
    {"adapters", "server"},
    {"langchain", "llama_index", "haystack", "bulk", "doctor", "testing"},
    {"__main__", "__init__"},
]
# Old import paths kept working by re-exporting from where the code lives now; nothing in the
# package imports them.
SHIMS = {"reranking.doctor"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (``from . import x`` counts as ``x``)."""
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package and name != "__init__" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith(NAME):
                target = node.module[len(NAME) + 1 :]
            else:
                continue
            subs = [f"{target}.{a.name}".strip(".") for a in node.names]
            hits = [s for s in subs if s in modules]
            found.update(hits if len(hits) == len(subs) else [target or "__init__", *hits])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(NAME + "."):
                    found.add(alias.name[len(NAME) + 1 :])
    found.discard(name)
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def test_every_module_sits_in_a_layer() -> None:
    unplaced = sorted(m for m in _graph() if not any(m.split(".")[0] in la for la in LAYERS))
    assert unplaced == []


def test_no_module_imports_a_shim() -> None:
    assert sorted(a for a, targets in _graph().items() if targets & SHIMS) == []


def test_no_import_circle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []


def test_imports_go_down_the_layers_only() -> None:
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in targets
        if _layer(b) > _layer(a) and a not in SHIMS
    )
    assert upward == []
