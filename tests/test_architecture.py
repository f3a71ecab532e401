"""The layers hold: read from the import graph of every module in ``leadlawk_daemon/``, ``actors/``
and ``supervisors/`` (``ast``, nothing imported), with the rules ``docs/architecture.md`` states.

The layers are defined here once; the page names the same lists. Two graphs are read:

* *module level*: the imports run when a module is imported, ``if TYPE_CHECKING:`` blocks
  included (a type-only import still ties the two modules' designs). Cycles are read here.
* *any level*: those and the imports inside functions. The layering rules are read here: an
  import deferred into a function is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("leadlawk_daemon", "actors", "supervisors")

# -- the layers --------------------------------------------------------------------------------

# The generic runtime: actor cell, mailboxes, lanes, stats, dead letters, the clock and the
# racing rule they run on, and the supervisors. It knows no product.
RUNTIME = (
    "actors.actor",
    "actors.clock",
    "actors.dead_letters",
    "actors.fair_gate",
    "actors.fair_mailbox",
    "actors.lanes",
    "actors.limits",
    "actors.mailbox",
    "actors.racing",
    "actors.stats",
    "supervisors",
)
# The domain actors, beside the runtime in actors/: the product's work on the runtime.
DOMAIN_ACTORS = (
    "actors.enricher",
    "actors.scrape_request",
    "actors.scraper",
    "actors.site",
    "actors.write_buffer",
    "actors.writer",
)
# Talk to the world: each knows its service and nothing of a job.
ADAPTERS = tuple(
    f"leadlawk_daemon.{name}"
    for name in ("maps", "pagespeed", "sites", "emails", "store", "intake", "quota", "resilience")
)
# The vocabulary: what the layers say to each other, below every adapter. The last three are
# plain data kept in an adapter's package (the geometry of an area, a PageSpeed result, a site
# report): each imports nothing of the product, and its package imports nothing when loaded,
# which test_data_kept_in_adapters_is_plain_data checks.
VOCABULARY = (
    "leadlawk_daemon.messages",
    "leadlawk_daemon.outcomes",
    "leadlawk_daemon.events",
    "leadlawk_daemon.listing",
    "leadlawk_daemon.jobspec",
    "leadlawk_daemon.maps.area",
    "leadlawk_daemon.pagespeed.result",
    "leadlawk_daemon.sites.report",
)
DATA_IN_ADAPTERS = ("leadlawk_daemon.maps.area", "leadlawk_daemon.pagespeed.result", "leadlawk_daemon.sites.report")
JOBS = ("leadlawk_daemon.jobs",)
JOB_SPEC = ("leadlawk_daemon.jobspec",)
# Test doubles of the world, reached only through the demo and the replica command.
REPLICAS_AND_CHAOS = ("leadlawk_daemon.replicas", "leadlawk_daemon.chaos")
DEMO_AND_REPLICA_SURFACES = ("leadlawk_daemon.collect", "leadlawk_daemon.cli")
# Adapters that still import the job spec, and why: the job intake admits job specs, so it parses
# and validates them (issue 21 leaves moving that parse above the intake for later). The list may
# only shrink: an entry that no longer imports it fails the test too.
ADAPTERS_KNOWING_THE_SPEC = {
    "leadlawk_daemon.intake.admission": "admits a job: parses and validates its spec",
    "leadlawk_daemon.intake.stream": "hands each admitted spec on (OnJob)",
    "leadlawk_daemon.intake.submit": "validates a spec before it is sent, so a typo is heard at once",
}
# Libraries of the adapters: importing the vocabulary loads none of them.
ADAPTER_LIBRARIES = ("playwright", "aiohttp", "redis", "asyncpg", "aiosqlite", "selectolax", "lxml")

# -- the graph ---------------------------------------------------------------------------------


def _in(module: str, layer: Iterable[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in layer)


@cache
def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(name: str, path: Path, *, module_level: bool, type_checking: bool = True) -> set[str]:
    """The project modules ``name`` imports: ``from a.b import c`` is ``a.b.c`` when that is a module.
    ``type_checking`` False: what runs, without the ``if TYPE_CHECKING:`` blocks."""
    modules = _modules()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    raw: set[str] = set()

    def visit(nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                raw.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])]) \
                    if node.level else node.module or ""
                raw.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
            if module_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if not type_checking and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            visit(ast.iter_child_nodes(node))

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    deps = set()
    for module in raw:
        while module and module not in modules:
            module = module.rpartition(".")[0]
        if module and module != name:
            deps.add(module)
    return deps


@cache
def graph(*, module_level: bool) -> dict[str, frozenset[str]]:
    return {
        name: frozenset(_imported(name, path, module_level=module_level)) for name, path in _modules().items()
    }


def _breaches(sources: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    """Each import from a module of ``sources`` of a module in ``forbidden`` (modules, not prefixes)."""
    deps = graph(module_level=False)
    banned = set(forbidden)
    return sorted(f"{module} imports {dep}" for module in sources for dep in deps[module] if dep in banned)


def _layer(layer: Iterable[str]) -> list[str]:
    return [module for module in graph(module_level=False) if _in(module, layer)]


def _product() -> list[str]:
    # The top-level packages themselves hold no code of either side.
    return [m for m in graph(module_level=False) if not _in(m, RUNTIME) and m not in PACKAGES]


# -- the rules ---------------------------------------------------------------------------------


def test_the_graph_is_read() -> None:
    # A reader that found no edges would pass every rule below.
    deps = graph(module_level=False)
    assert "actors.mailbox" in deps["actors.fair_mailbox"]
    assert "leadlawk_daemon.outcomes" in deps["leadlawk_daemon.messages"]
    assert len(deps) > 150
    every_layer = (*RUNTIME, *DOMAIN_ACTORS, *ADAPTERS, *VOCABULARY, *JOBS, *REPLICAS_AND_CHAOS)
    assert all(_layer([name]) for name in every_layer), "a layer names a module that is not there"


def test_every_actor_module_is_runtime_or_domain() -> None:
    # A new module in actors/ must be placed in one of the two lists, not slip past both rules.
    assert sorted(m for m in _layer(["actors"]) if m != "actors") == sorted((*RUNTIME[:-1], *DOMAIN_ACTORS))


def test_the_runtime_imports_nothing_of_the_product() -> None:
    assert _breaches(_layer(RUNTIME), _product()) == []


def test_actors_import_nothing_of_jobs() -> None:
    assert _breaches(_layer(["actors"]), JOBS) == []


def test_adapters_import_no_job_spec_and_no_jobs() -> None:
    sources = [m for m in _layer(ADAPTERS) if m not in DATA_IN_ADAPTERS]
    breaches = _breaches(sources, (*JOB_SPEC, *JOBS))
    known = sorted(f"{module} imports leadlawk_daemon.jobspec" for module in ADAPTERS_KNOWING_THE_SPEC)
    assert breaches == known


def test_the_vocabulary_imports_no_adapter() -> None:
    deps = graph(module_level=False)
    adapters = [m for m in _layer(ADAPTERS) if m not in DATA_IN_ADAPTERS]
    assert _breaches(_layer(VOCABULARY), adapters) == []
    # Nor through what it imports.
    reached: set[str] = set()
    todo = list(_layer(VOCABULARY))
    while todo:
        for dep in deps[todo.pop()] - reached:
            reached.add(dep)
            todo.append(dep)
    assert sorted(m for m in reached if m in adapters) == []


def test_data_kept_in_adapters_is_plain_data() -> None:
    deps = graph(module_level=True)
    for module in DATA_IN_ADAPTERS:
        assert deps[module] == frozenset(), module
        package = module.rpartition(".")[0]
        # Loading the package runs its __init__: it must pull in no client for the data's sake.
        loaded = _imported(package, _modules()[package], module_level=True, type_checking=False)
        assert all(_in(dep, VOCABULARY) for dep in loaded), package


def test_importing_the_vocabulary_loads_no_adapter_library() -> None:
    # What the graph says, seen from the interpreter: no Playwright, no database or Redis client.
    code = (
        "import sys\n"
        f"import {', '.join(_layer(VOCABULARY))}\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({ADAPTER_LIBRARIES!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_no_production_module_imports_replicas_or_chaos() -> None:
    sources = [m for m in _product() if not _in(m, (*REPLICAS_AND_CHAOS, *DEMO_AND_REPLICA_SURFACES))]
    assert _breaches(sources, REPLICAS_AND_CHAOS) == []


def test_there_is_no_import_cycle() -> None:
    deps = graph(module_level=True)
    cycles = _strongly_connected(deps)
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


def test_a_cycle_would_be_found() -> None:
    # The finder itself, on a graph with one cycle and one chain.
    assert _strongly_connected({"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset({"a"})}) == [["a", "b"]]


def _strongly_connected(deps: dict[str, frozenset[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative: the graph is deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(deps):
        if root in index:
            continue
        work = [(root, iter(sorted(deps[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(deps.get(child, frozenset())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found
