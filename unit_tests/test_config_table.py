"""docs/configuration.md's field table against the spec it documents (manifest.yaml, connection_specification): a field
added, renamed or removed in the spec, or a default changed, fails here until the table says the same."""

import re
from pathlib import Path

import pytest
import yaml

from source_mixpanel.manifest import manifest_path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
HEADER = "| field | default | meaning |"
SPEC = yaml.safe_load(manifest_path().read_text())["spec"]["connection_specification"]


def table_rows(text: str) -> dict[str, tuple[str, str]]:
    """Each field the table (headed `| field | default | meaning |`) names in its first column -> (default, meaning)."""
    rows, lines = {}, iter(text.splitlines())
    for line in lines:
        if line.strip() == HEADER:
            break
    next(lines, None)  # the |---| line
    for line in lines:
        if not line.startswith("|"):
            break
        field, default, meaning = (cell.strip() for cell in line.strip().strip("|").split("|", 2))
        for name in re.findall(r"`([^`]+)`", field):
            rows[name] = (default, meaning.rstrip("|").strip())
    return rows


def mismatches(text: str, spec: dict) -> list[str]:
    rows, properties = table_rows(text), spec["properties"]
    found = [f"{name}: in the spec, not in the table" for name in properties if name not in rows]
    found += [f"{name}: in the table, not in the spec" for name in rows if name not in properties]
    for name, schema in properties.items():
        if name in rows and "default" in schema and str(schema["default"]).lower() not in rows[name][0].lower():
            found.append(f"{name}: the spec's default {schema['default']!r} is not the table's {rows[name][0]!r}")
        for option in schema.get("oneOf", []):  # credentials: each option's fields are named in its row
            found += [f"{name}.{field}: not named in the {name} row" for field in option["properties"]
                      if name in rows and f"`{field}`" not in rows[name][1]]
    return found


def test_the_table_names_every_field_of_the_spec_and_nothing_else():
    assert table_rows(PAGE.read_text()), "no table found"
    assert mismatches(PAGE.read_text(), SPEC) == []


@pytest.mark.parametrize("drift", ["a field the spec gains", "a field the spec loses", "a default", "a credentials field"])
def test_each_kind_of_drift_is_caught(drift):
    spec = yaml.safe_load(yaml.safe_dump(SPEC))  # a deep copy
    if drift == "a field the spec gains":
        spec["properties"]["export_retries"] = {"type": "integer"}
    elif drift == "a field the spec loses":
        del spec["properties"]["page_size"]
    elif drift == "a default":
        spec["properties"]["page_size"]["default"] = 250
    else:
        spec["properties"]["credentials"]["oneOf"][0]["properties"]["service_account_key"] = {"type": "string"}
    assert len(mismatches(PAGE.read_text(), spec)) == 1
