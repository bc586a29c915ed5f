"""The package's import graph, module to module (ast over source_mixpanel/**.py), keeps its layers.

Layering rule: a module imports only modules of lower layers, never one of its own layer or above. The layers,
lowest first:
  0. leaves that import nothing of the package: the run's shared state (sync_run), the manifest loader (manifest),
     the connector's errors as Airbyte shows them (failures),
     an export answer's lines and window (export.lines, export.response), property names and kinds, the --state
     file's shapes, the funnels' STATE cadence, and the sub-packages' docstring-only __init__s;
  1. what reads only leaves: the export's read history, one budget family, the spec's rules, Mixpanel's answers,
     the columns at read;
  2. components that check, count or discover: the body check, the budget, discovery, config validation, cursors,
     reports, state migrations;
  3. what shapes records through discovery's names (the decoder, profiles), and the read plan;
  4. the source;
  5. the command (entrypoint), and the package's __init__.
So no import climbs back up from the decoder: it reads the body check's work from the response (export.response),
never the body check itself nor the source; and config.spec reads the manifest without importing the source.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "source_mixpanel"
LAYERS = [
    {"sync_run", "manifest", "failures", "export.lines", "export.response", "properties.names", "properties.kinds", "state_file",
     "partition_states", "export", "budget", "config", "properties"},
    {"export.history", "budget.family", "config.spec", "answers", "properties.columns"},
    {"export.body", "budget.request_budget", "properties.discovery", "config.validation", "cursors", "reports",
     "state_migrations"},
    {"export.decoder", "profiles", "budget.plan"},
    {"source"},
    {"entrypoint", ""},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path: Path, modules: set) -> set:
    """The package's modules this file imports (`from source_mixpanel.x import y` is y where y is a module, else x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "source_mixpanel":
            base = node.module.removeprefix("source_mixpanel").lstrip(".")
            for alias in node.names:
                inner = f"{base}.{alias.name}".lstrip(".")
                found.add(inner if inner in modules else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("source_mixpanel").lstrip(".") for alias in node.names
                      if alias.name.startswith("source_mixpanel")}
    return found


def graph() -> dict:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: package_imports(path, set(files)) for name, path in files.items()}


def layer(module: str) -> int:
    (index,) = [i for i, members in enumerate(LAYERS) if module in members]
    return index


def test_every_module_has_a_layer_and_imports_only_lower_layers():
    imports = graph()
    assert set(imports) == set().union(*LAYERS)
    climbing = {(module, imported) for module, targets in imports.items() for imported in targets
                if layer(imported) >= layer(module) and imported != module}
    assert not climbing


def test_the_decoder_reaches_neither_the_body_check_nor_the_source():
    imports = graph()
    reached, todo = set(), ["export.decoder"]
    while todo:
        for imported in imports[todo.pop()] - reached:
            reached.add(imported)
            todo.append(imported)
    assert reached.isdisjoint({"export.body", "source", "entrypoint"})
    assert "source" not in imports["config.spec"] and "source" not in imports["config.validation"]
