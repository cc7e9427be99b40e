"""The import contract: no import cycles, and no layer imports one above it (README, "Architecture").

Every ``import`` statement counts, also those inside functions and under ``TYPE_CHECKING``: an import
deferred into a function is still a dependency, and a cycle through one is still a cycle.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("newsdesk", "ingest", "retrieval", "bot", "evals", "prompts")

#: Component -> the components its modules may import. ``newsdesk`` is the shared core (models, settings,
#: errors, store, embedding); ``newsdesk.app`` is the command line and wiring, the one composition root.
ALLOWED = {
    "newsdesk": {"newsdesk"},
    "prompts": {"prompts"},
    "ingest": {"ingest", "newsdesk"},
    "retrieval": {"retrieval", "prompts", "newsdesk"},
    "bot": {"bot", "retrieval", "ingest", "newsdesk"},
    "evals": {"evals", "retrieval", "ingest", "newsdesk"},
    "newsdesk.app": {"newsdesk.app", "bot", "evals", "retrieval", "ingest", "prompts", "newsdesk"},
}


def component(module: str) -> str:
    """The layer component a module belongs to: ``newsdesk.app.cli`` -> ``newsdesk.app``."""
    if module == "newsdesk.app" or module.startswith("newsdesk.app."):
        return "newsdesk.app"
    return module.split(".")[0]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports, read from the source (nothing is imported)."""
    files = {module_name(p, root): p for package in packages for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, one level up per extra dot
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` the module mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:  # ``import a.b.c`` depends on the module a.b.c
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a component its own component may not import."""
    return sorted(f"{source} imports {target}" for source, targets in graph.items() for target in targets
                  if component(target) not in ALLOWED[component(source)])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# --- the project ------------------------------------------------------------------------------------------
def test_the_project_has_no_import_cycles() -> None:
    assert cycles(import_graph(ROOT)) == []


def test_no_layer_imports_a_layer_above_it() -> None:
    assert forbidden_imports(import_graph(ROOT)) == []


def test_every_module_belongs_to_a_known_component() -> None:
    assert {component(module) for module in import_graph(ROOT)} <= set(ALLOWED)


def test_the_top_level_packages_are_this_projects_alone() -> None:
    """The six top-level names are generic (README, "Architecture"): no other installed distribution may
    claim one, and each must import from this checkout."""
    owners = importlib.metadata.packages_distributions()
    for name in PACKAGES:
        assert set(owners.get(name, ["newsdesk"])) == {"newsdesk"}, f"{name} is also installed by {owners[name]}"
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        assert Path(spec.origin).resolve().is_relative_to(ROOT), f"{name} imports from {spec.origin}"


# --- the checks themselves fail on a bad graph ---------------------------------------------------------
def write(root: Path, module: str, source: str) -> None:
    path = root / Path(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(root).parents:
        if parent != Path("."):
            (root / parent / "__init__.py").touch()
    path.write_text(source, encoding="utf-8")


def test_a_cycle_through_a_deferred_import_is_found(tmp_path: Path) -> None:
    write(tmp_path, "retrieval.answer", "def build():\n    from retrieval.llm import LLM\n")
    write(tmp_path, "retrieval.llm", "from retrieval.answer import build\n")
    write(tmp_path, "retrieval.search", "from retrieval import answer\n")
    assert cycles(import_graph(tmp_path)) == [["retrieval.answer", "retrieval.llm"]]


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    write(tmp_path, "newsdesk.models", "import retrieval.answer\n")
    write(tmp_path, "retrieval.answer", "from newsdesk.models import Answer\n")
    write(tmp_path, "ingest.sync", "from retrieval.answer import x\n")
    write(tmp_path, "bot.app", "from newsdesk.app.cli import app\n")
    write(tmp_path, "newsdesk.app.cli", "from bot.app import run\n")
    assert forbidden_imports(import_graph(tmp_path)) == [
        "bot.app imports newsdesk.app.cli",
        "ingest.sync imports retrieval.answer",
        "newsdesk.models imports retrieval.answer",
    ]
    assert cycles(import_graph(tmp_path)) == [["bot.app", "newsdesk.app.cli"],
                                               ["newsdesk.models", "retrieval.answer"]]


def test_relative_and_package_imports_resolve(tmp_path: Path) -> None:
    write(tmp_path, "bot.cogs.ask", "from ..app import NewsBot\nfrom . import news\n")
    write(tmp_path, "bot.cogs.news", "")
    write(tmp_path, "bot.app", "import prompts\n")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "__init__.py").touch()
    graph = import_graph(tmp_path)
    assert graph["bot.cogs.ask"] == {"bot.app", "bot.cogs.news"}
    assert graph["bot.app"] == {"prompts"}
    assert forbidden_imports(graph) == ["bot.app imports prompts"]
