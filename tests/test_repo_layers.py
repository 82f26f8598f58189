"""The package's floors (docs/architecture.md): a module imports, at module level, only from its floor or below.

An import inside a function may reach up (``checkpoint.load_model`` builds a method's model); the table below is
the one in docs/architecture.md and README's layout, so a new module must be given a floor here first.
"""

import ast
from pathlib import Path

from conftest import REPO

FLOORS = {
    1: "errors mixing losses longtail_losses augment models config precision",
    2: "data checkpoint runs metrics console",
    3: "methods",
    4: "train fast distributed",
    5: "analysis plots",
    6: "extras notebook",
    7: "report cli __main__ __init__",
}
FLOOR = {name: floor for floor, names in FLOORS.items() for name in names.split()}
PACKAGE = REPO / "glmc_core"


def _module_level_imports(path: Path, package: Path = PACKAGE):
    """``(line, top-level module of glmc_core)`` of each relative import at module level."""
    parts = path.relative_to(package).with_suffix("").parts
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(parts[:-1])[: len(parts) - node.level] if node.level > 1 else list(parts[:-1])
            target = base + (node.module.split(".") if node.module else [node.names[0].name])
            yield node.lineno, target[0]


def test_every_module_has_a_floor():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert tops <= set(FLOOR), f"give these a floor in tests/test_repo_layers.py: {sorted(tops - set(FLOOR))}"


def test_module_level_imports_go_down_the_floors():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for line, target in _module_level_imports(path):
            if target != me and FLOOR.get(target, 0) > FLOOR[me]:
                upward.append(f"{path.relative_to(REPO)}:{line} (floor {FLOOR[me]}) imports {target} "
                              f"(floor {FLOOR[target]})")
    assert not upward, "\n".join(upward)


def test_the_check_sees_upward_imports_at_module_level_only(tmp_path):
    pkg = tmp_path / "glmc_core"
    (pkg / "data").mkdir(parents=True)
    (pkg / "mixing.py").write_text("from .train import fit\n\ndef f():\n    from .cli import main\n")
    (pkg / "data" / "cache.py").write_text("from ..runs import RunFolder\nfrom . import formats\n")
    assert [t for _, t in _module_level_imports(pkg / "mixing.py", pkg)] == ["train"]
    assert [t for _, t in _module_level_imports(pkg / "data" / "cache.py", pkg)] == ["runs", "data"]
