"""New-block templates (issue 21): every registered connector's cell parses, asks for its required
fields, names secrets like the credentials panel does and keeps defaults as comments."""

from __future__ import annotations

import json

import pytest

from jupyter_di.connectors import registry
from jupyter_di.integration.cell_template import templates, templates_json
from jupyter_di.integration.di_config import DIConfig

ALL = templates()


@pytest.mark.parametrize("entry", ALL, ids=[e["name"] for e in ALL])
def test_every_template_parses_as_its_connector(entry):
    spec = registry.get(entry["name"])
    for kind in ("source", "destination"):
        if kind not in entry:
            assert getattr(spec, kind) is None
            continue
        text = entry[kind].replace("{name}", "blk").replace("{upstream}", "up")
        magic, body = text.split("\n", 1)
        assert magic == ("%%di_source blk" if kind == "source" else "%%di_destination blk --upstream up")
        cfg = DIConfig.parse(body, kind=kind, block="blk")
        assert cfg.connector == spec.name
        for field in spec.config_schema:
            if field.secret:
                assert cfg.config[field.name] == "{{ secret('blk_" + field.name + "') }}"  # the panel's secret name
            elif field.required:
                assert field.name in cfg.config and cfg.config[field.name] is None  # there, to be filled in
            else:
                assert field.name not in cfg.config  # a comment: the default applies
                assert f"  # {field.name}:" in body


def test_postgresql_template_reads_as_a_user_would_fill_it():
    pg = {e["name"]: e for e in ALL}["postgresql"]["source"]
    assert "  host:  # required: Server host name or IP address.\n" in pg
    assert "  # port: 5432  # Server port.\n" in pg
    assert pg.rstrip().endswith("streams: {}  # Discover streams in the panel, or list them here")


def test_the_extension_reads_the_templates_from_a_repr():
    """A silent execute request's user_expressions answer carries repr(value) as text/plain."""
    assert json.loads(repr(templates_json())) == ALL
