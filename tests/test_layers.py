"""The layering of docs/architecture.md, checked on the source: no module imports a layer
above its own (deferred imports included)."""

import ast
from pathlib import Path

import sparsecodec

# lowest first; a module may import its own layer and those below it
LAYERS = [
    {"errors", "status", "options", "plugins", "progress", "dtypes", "__version__"},  # (a constant)
    {"coding"},
    {"kernels"},
    {"formats"},
    {"api", "bounds", "quantize", "examples", "targets"},
    {"io"},
    {"adapters", "sources"},
    {"pack", "runtime", "tune", "torch"},
    {"cli", "demo", "timing"},
    {"__init__", "__main__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
ROOT = Path(sparsecodec.__file__).parent


def imports(path: Path):
    """(imported top-level unit of sparsecodec, line) for every relative import in a file."""
    pkg = list(path.relative_to(ROOT).parent.parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[:len(pkg) - node.level + 1]
            target = [p for p in [*base, *(node.module or "").split(".")] if p]
            yield (target or [node.names[0].name])[0], node.lineno


def test_every_module_has_a_layer():
    units = {p.relative_to(ROOT).with_suffix("").parts[0] for p in ROOT.rglob("*.py")}
    assert units <= set(RANK), sorted(units - set(RANK))


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in ROOT.rglob("*.py"):
        unit = path.relative_to(ROOT).with_suffix("").parts[0]
        for target, line in imports(path):
            if RANK[target] > RANK[unit]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert upward == []
