"""Stricter cell YAML (issue 21): enum values are case-exact, unknown keys at every level say "did you mean"."""

from __future__ import annotations

import pytest

from jupyter_di.errors import ConfigError
from jupyter_di.integration.di_config import DIConfig


def error_of(yaml_text: str, kind: str = "source") -> str:
    with pytest.raises(ConfigError) as info:
        DIConfig.parse(yaml_text, kind=kind, block="shop")
    return str(info.value)


STREAM = "source: files\nconfig:\n  path: data\nstreams:\n  orders:\n"


@pytest.mark.parametrize(
    ("setting", "exact"),
    [
        ("replication_method: incremental\n    bookmark_properties: [updated_at]", "INCREMENTAL"),
        ("replication_method: Full_Table", "FULL_TABLE"),
        ("unique_conflict_method: update", "UPDATE"),
        ("delete_mode: SOFT", "soft"),
        ("null_cursor: Resync", "resync"),
    ],
)
def test_an_enum_in_another_case_is_refused_with_its_exact_spelling(setting, exact):
    message = error_of(STREAM + "    " + setting + "\n")
    key = setting.split(":")[0]
    assert f"must be written {exact}" in message and f"write `{key}: {exact}`" in message
    assert "block 'shop'" in message and "orders" in message


def test_a_misspelt_enum_value_gets_the_closest_one():
    assert "did you mean INCREMENTAL?" in error_of(STREAM + "    replication_method: INCREMENTL\n")


def test_exact_values_still_parse():
    cfg = DIConfig.parse(STREAM + "    replication_method: FULL_TABLE\n    delete_mode: hard\n", kind="source", block="shop")
    assert cfg.streams["orders"] == {"replication_method": "FULL_TABLE", "delete_mode": "hard"}


@pytest.mark.parametrize(
    ("yaml_text", "suggestion"),
    [
        ("source: files\nconfg:\n  path: data\n", "did you mean 'config'?"),
        (STREAM + "    key_property: [id]\n", "did you mean 'key_properties'?"),
        (
            "destination: duckdb\nconfig:\n  path: x.duckdb\nupstream:\n  shop:\n    use_output_as_inpt: true\n",
            "did you mean 'use_output_as_input'?",
        ),
    ],
)
def test_an_unknown_key_at_every_level_says_did_you_mean(yaml_text, suggestion):
    kind = "destination" if yaml_text.startswith("destination") else "source"
    assert suggestion in error_of(yaml_text, kind)
