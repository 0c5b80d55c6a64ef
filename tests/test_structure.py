"""The package's modules import each other without a cycle, counting imports inside functions too
(a function-local import must not hide one)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "espnet_ssvd"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str) -> set[str]:
    """Every espnet_ssvd module that ``path`` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("espnet_ssvd")}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = node.module if node.level == 0 else ".".join(p for p in (base, node.module) if p)
            if target and target.startswith("espnet_ssvd"):
                found.add(target)
    return found


def test_no_import_cycles():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in imports(path, name) if m in modules and m != name} for name, path in modules.items()}
    # A package's __init__ is imported with any of its modules: the edge to it is not a choice.
    graph = {name: {m for m in deps if not name.startswith(m + ".")} for name, deps in graph.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle.extend(stack[stack.index(dep):] + [node, dep] if dep in stack else [node, dep])
                return True
            if dep not in state and visit(dep, stack + [node]):
                return True
        state[node] = 2
        return False

    for name in sorted(graph):
        if name not in state and visit(name, []):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)
    assert len(graph) > 20  # the walk saw the package


def test_recipe_modules_are_small_and_say_what_they_do():
    for path in sorted([*(PACKAGE / "recipe").glob("*.py"), *(PACKAGE / "spk_recipe").glob("*.py")]):
        lines = path.read_text().splitlines()
        assert len(lines) <= 250, f"{path.name}: {len(lines)} lines"
        if path.name != "__main__.py":
            assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has no docstring"
