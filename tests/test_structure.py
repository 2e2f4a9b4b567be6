"""The codebase's shape, checked with the standard library's `ast`: methods are looked up, never
branched on; functions are short; the import graph of `ultr/` has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from ultr import methods

ULTR = Path(__file__).resolve().parent.parent / "ultr"
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ULTR.rglob("*.py")):
        parts = path.relative_to(ULTR.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings(e)]
    return []


def method_name_comparisons(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every comparison against a literal method name (`m == "dla"`, `m in ("rem", ...)`)."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                hits += [(node.lineno, s) for s in _strings(operand) if s in names]
    return hits


def test_no_module_outside_the_registry_compares_method_names():
    names = set(methods.names())
    found = {}
    for mod, path in _modules().items():
        if mod == "ultr.methods" or mod.startswith("ultr.methods."):
            continue
        if hits := method_name_comparisons(ast.parse(path.read_text()), names):
            found[mod] = hits
    assert not found, f"branch on a method's name outside ultr/methods: {found}"


def test_the_name_check_catches_a_branch():
    tree = ast.parse("if method == 'rem' or m in ('dla', 'x'):\n    pass\nelse:\n    y = 'naive'\n")
    assert [n for _, n in method_name_comparisons(tree, set(methods.names()))] == ["rem", "dla"]


def test_every_method_module_registers_its_own_name():
    modules = {p.stem for p in (ULTR / "methods").glob("*.py") if p.stem != "base" and not p.stem.startswith("_")}
    assert set(methods.names()) == modules
    for name in methods.names():
        assert methods.get(name).name == name


def long_functions(tree: ast.AST, limit: int) -> list[tuple[str, int]]:
    return [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_no_function_in_ultr_is_longer_than_80_lines():
    found = {mod: hits for mod, path in _modules().items() if (hits := long_functions(ast.parse(path.read_text()), MAX_FUNCTION_LINES))}
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines: {found}"


def test_the_length_check_counts_lines():
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    assert long_functions(ast.parse(f"def f():\n{body}\n"), MAX_FUNCTION_LINES) == [("f", 82)]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the `ultr` modules it imports, anywhere in its body (function-local imports too)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[mod] |= {t for t in targets if t in modules and t != mod}
        if "pkgutil.iter_modules(__path__)" in path.read_text():  # a registry imports all its modules
            graph[mod] |= {m for m in modules if m.rsplit(".", 1)[0] == mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_import_graph_of_ultr_has_no_cycle():
    assert find_cycle(import_graph(_modules())) is None


def test_the_cycle_check_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_ultr_imports_no_hydra():
    for mod, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "hydra" for n in names), f"{mod} imports Hydra; only pipelines/ may"


def test_one_definition_per_click_model():
    """Each click model is defined once, in ultr/click_models/models/<key>.py: no other module of
    ultr defines a class for a model (by its key or its usual names), and no two modules share a key."""
    import ast

    from ultr.click_models.models import MODELS
    root = Path(__file__).resolve().parent.parent / "ultr"
    aliases = {"pbm": ["positionbased"], "cascade": ["cascade"], "dcm": ["dependentclick"], "dbn": ["dynamicbayesian"],
               "sdbn": [], "ccm": ["clickchain"], "ubm": ["userbrowsing"], "trust": ["trustbias"],
               "mixture": ["mixturepbm"], "matrix": ["matrixclick"]}
    assert set(aliases) == set(MODELS)
    for key, model in MODELS.items():
        assert Path(__import__(model.__module__, fromlist=["_"]).__file__).name == f"{key}.py"
    for path in root.rglob("*.py"):
        if path.parent.name == "models" and path.parent.parent.name == "click_models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                name = node.name.lower()
                hits = [k for k, names in aliases.items() if name == k or any(name.startswith(a) for a in names)]
                assert not hits, f"{path}: class {node.name} defines click model {hits[0]} a second time"
