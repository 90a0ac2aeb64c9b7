"""The template sandbox holds, rendering is bounded, the cell's YAML is strict (issue 13, items 1 and 4).

Every case runs the real CLI (``jupyter_di.cli.main(["run", ...])``) on a
notebook written with nbformat: a ``files`` source reading a CSV, two Python
blocks (a dict with a generator and ``open`` in it, a DataFrame) and a DuckDB
destination whose ``schema:`` is the template under test.  A failing template is
one ``ConfigError`` line naming the block and the config field, exit status 1
(the block failed; a cell's body is read when its block runs), no traceback,
and nothing read or written outside: a sentinel file in another folder never
shows up in any output or file, and the files an attack tries to write do not
exist.  The bombs are bounded by the sandbox, not by the test: each is asserted
to fail with its message (pytest-timeout turns a regression into a failure, not
a hang), and the worst ones run in a subprocess limited to 1 GB of address space.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import duckdb
import pytest
import yaml

from jupyter_di.integration import safe_yaml
from tests.support.notebooks import CliResult, run_notebook, write_notebook

pytestmark = pytest.mark.timeout(120)

SOURCE = "%%di_source src0\nsource: files\nconfig:\n  path: data\n  format: csv\n"
CREDS = """%%di_block creds
@data_loader
def load(**kwargs):
    return {'path': 'wh.duckdb', 'schema': 'from_creds', 'port': 5432, 'g': (x for x in [1]), 'f': open}
"""
FRAME = """%%di_block frame
import pandas as pd
@data_loader
def load(**kwargs):
    return pd.DataFrame({'schema': ['from_frame'], 'n': [7]})
"""


def destination(schema: str, extra_config: str = "") -> str:
    """A DuckDB destination of src0 whose ``schema:`` is ``schema`` (a YAML literal block: no quoting)."""
    body = textwrap.indent(schema, "    ")
    return (
        "%%di_destination wh --upstream src0 creds frame\ndestination: duckdb\nconfig:\n  path: wh.duckdb\n"
        f"  schema: |-\n{body}\n{extra_config}"
        "upstream:\n  creds: {only_as_input: true}\n  frame: {only_as_input: true}\n"
    )


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder outside the notebook's, holding a sentinel file no template may read."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "sentinel.txt").write_text(f"SENTINEL-{uuid.uuid4().hex}")
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("id,total\n1,9.5\n2,3.25\n")
    return tmp_path


def run_nb(folder: Path, capsys, *cells: str) -> CliResult:
    return run_notebook(write_notebook(folder / "nb.ipynb", cells), capsys=capsys)


def one_error_line(err: str, block: str = "wh") -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"block '{block}'")]
    assert len(lines) == 1, err
    return lines[0]


def assert_nothing_leaked(folder: Path, outside: Path, *texts: str) -> None:
    secret = (outside / "sentinel.txt").read_text()
    for text in texts:
        assert secret not in text
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert sorted(p.name for p in outside.iterdir()) == ["sentinel.txt"]  # nothing written beside it


def run_template(folder: Path, outside: Path, capsys, schema: str, extra_config: str = "") -> str:
    """Run ``schema`` as the destination's template; it must fail as one clear line. Returns the line."""
    schema = schema.replace("SENTINEL", str(outside / "sentinel.txt")).replace("PWNED", str(outside / "pwned.csv"))
    code, out, err = run_nb(folder, capsys, SOURCE, CREDS, FRAME, destination(schema, extra_config))
    assert code == 1, out + err
    line = one_error_line(err)
    assert line.startswith("block 'wh': "), line
    assert_nothing_leaked(folder, outside, out, err)
    assert not (folder / "wh.duckdb").exists() or not _tables(folder / "wh.duckdb")
    return line


def _tables(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]


# --------------------------------------------------------------------------------------------
# What templates may do: block_output indexes into data and hands back plain values
# --------------------------------------------------------------------------------------------
def test_block_output_picks_dict_keys_dataframe_cells_and_stream_rows(folder, outside, capsys):
    schema = (
        "{{ block_output('creds', 'schema') }}_{{ block_output('frame', 'schema', 0) }}"
        "_{{ block_output('frame', 'n', 0) + 1 }}_{{ block_output('frame', 0).n }}"
        "_{{ block_output('src0', 'rows', 1, 0) }}_{{ block_output('src0', 'columns') | join('_') }}"
        "_{{ block_output('src0', 'stream').stream }}"
    )
    code, out, err = run_nb(folder, capsys, SOURCE, CREDS, FRAME, destination(schema))
    assert code == 0, err
    with duckdb.connect(str(folder / "wh.duckdb"), read_only=True) as con:
        schemas = {s for (s,) in con.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'orders'").fetchall()}
    assert schemas == {"from_creds_from_frame_8_7_2_id_total_orders"}
    assert_nothing_leaked(folder, outside, out, err)


# --------------------------------------------------------------------------------------------
# Escapes: each reaches no callable, no file; one clear line naming the block and the field
# --------------------------------------------------------------------------------------------
ESCAPES = {
    # calling methods of upstream objects (before: wrote the file)
    "stream method": (
        "{{ block_output('src0', 'to_pandas')().to_csv('PWNED') }}",
        "the output of block 'src0' has no field 'to_pandas'. It has: stream, columns, rows.",
    ),
    "stream reader": ("{{ block_output('src0', 'reader')().read_all() }}", "has no field 'reader'"),
    "stream private": ("{{ block_output('src0', '_path') }}", "has no field '_path'"),
    "frame method": (
        "{{ block_output('frame', 'to_csv')('PWNED') }}",
        "the output of block 'frame' has no field 'to_csv'. It has: schema, n.",
    ),
    "whole frame": ("{{ block_output('frame') }}", "block_output('frame') is a pandas.DataFrame, which a template cannot use"),
    "column method": ("{{ block_output('frame', 'schema').to_csv('PWNED') }}", "'list object' has no attribute 'to_csv'"),
    # a generator's frame (before: read the file into the error message)
    "generator frame": (
        "{{ block_output('creds', 'g').gi_frame.f_builtins.open('SENTINEL').read() }}",
        "block_output('creds', 'g') is a generator, which a template cannot use",
    ),
    "generator frame by path": (
        "{{ block_output('creds', 'g', 'gi_frame', 'f_builtins', 'open')('SENTINEL').read() }}",
        "the output of block 'creds' has no field 'gi_frame'.",
    ),
    "builtin in data": (
        "{{ block_output('creds', 'f')('SENTINEL').read() }}",
        "block_output('creds', 'f') is a builtin_function_or_method",
    ),
    "whole dict with callables": ("{{ block_output('creds') }}", "is a generator, which a template cannot use"),
    "dunder path step": ("{{ block_output('creds', '__class__') }}", "has no field '__class__'"),
    # Jinja2 classics on what templates can reach
    "str class": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "access to attribute '__class__' of 'str' object is unsafe"),
    "rows class": ("{{ block_output('src0', 'rows').__class__ }}", "access to attribute '__class__' of 'list' object is unsafe"),
    "list filter class": (
        "{{ (block_output('src0', 'rows') | list).__class__ }}",
        "access to attribute '__class__' of 'list' object is unsafe",
    ),
    "range self": ("{{ range.__self__ }}", "access to attribute '__self__'"),
    "cycler globals": ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__'"),
    "joiner globals": ("{{ joiner.__globals__ }}", "access to attribute '__globals__'"),
    "namespace globals": ("{{ namespace.__globals__ }}", "access to attribute '__globals__'"),
    "dict init": ("{{ dict.__init__ }}", "access to attribute '__init__'"),
    "dict mro": ("{{ dict.mro()[1] }}", "'function object' has no attribute 'mro'"),
    "lipsum": ("{{ lipsum.__globals__ }}", "'lipsum' is undefined"),
    "self context": ("{{ self._TemplateReference__context }}", "access to attribute '_TemplateReference__context'"),
    "self init": ("{{ self.__init__.__globals__ }}", "access to attribute '__init__'"),
    "self value": ("{{ self }}", "is a jinja2.runtime.TemplateReference, which a template cannot use"),
    "function value": ("{{ env_var }}", "is a function, which a template cannot use"),
    "function globals": ("{{ block_output.__globals__ }}", "access to attribute '__globals__'"),
    "format attribute": (
        "{{ '{0.__class__}'.format(block_output('src0', 'rows')) }}",
        "access to attribute '__class__' of 'list' object is unsafe",
    ),
    "percent on object": ("{{ '%s' % block_output('frame') }}", "is a pandas.DataFrame, which a template cannot use"),
    "attr filter": (
        "{{ block_output('creds', 'schema') | attr('__class__') }}",
        "access to attribute '__class__' of 'str' object is unsafe",
    ),
    "map attribute": (
        "{{ [block_output('creds', 'port')] | map(attribute='__class__') | list }}",
        "access to attribute '__class__' of 'int' object is unsafe",
    ),
    "selectattr": (
        "{{ block_output('src0', 'rows') | selectattr('__class__') | list }}",
        "access to attribute '__class__' of 'list' object is unsafe",
    ),
    "mutation": ("{{ block_output('src0', 'rows').append(1) }}", "access to attribute 'append' of 'list' object is unsafe"),
    "str translate": ("{{ 'a'.translate({97: 'b'}) }}", "str.translate() is not available in templates"),
    "str maketrans": ("{{ ''.maketrans('a', 'b') }}", "str.maketrans() is not available in templates"),
    # no loader: no other template, no file
    "include": ("{% include 'SENTINEL' %}", "{% include %} is not available: a block's templates cannot read other templates or files"),
    "import": ("{% import 'SENTINEL' as x %}", "{% import %} is not available"),
    "from import": ("{% from 'SENTINEL' import x %}", "{% from ... import %} is not available"),
    "extends": ("{% extends 'SENTINEL' %}", "{% extends %} is not available"),
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_escapes_reach_no_callable_and_no_file(folder, outside, capsys, name):
    template, message = ESCAPES[name]
    line = run_template(folder, outside, capsys, template)
    assert line.startswith("block 'wh': config field 'schema': "), line
    assert message in line, line


# --------------------------------------------------------------------------------------------
# Template errors: one ConfigError naming the block and the field, never a bare exception
# --------------------------------------------------------------------------------------------
ERRORS = {
    "{{ 1/0 }}": "cannot render '{{ 1/0 }}': ZeroDivisionError: division by zero.",
    "{{ 'a' + 1 }}": "TypeError",
    "{{ env_var(5) }}": "env_var() needs a name as text, not 5.",
    "{{ env_var() }}": "env_var() needs a name: env_var('NAME', DEFAULT).",
    "{{ env_var('A', 'b', 'c') }}": "env_var() takes a name and a default, not 3 arguments.",
    "{{ env_var('JDI_SURELY_NOT_SET') }}": "environment variable 'JDI_SURELY_NOT_SET' is not set.",
    "{{ secret() }}": "secret() needs a name: secret('NAME').",
    "{{ secret(5) }}": "secret() needs a name as text, not 5.",
    "{{ variables() }}": "variables() needs a name",
    "{{ block_output() }}": "block_output() needs an upstream block's name",
    "{{ block_output(5) }}": "block_output() needs an upstream block's name as text, not 5.",
    "{{ block_output('creds', ['x']) }}": "a path step must be a field name or an index, not ['x'].",
    "{{ block_output('nowhere') }}": "'nowhere' is not an upstream block.",
    "{{ block_output('frame', 'n', 5) }}": "has no field 5. It has 1 item.",
    "{{ nope }}": "'nope' is undefined.",
    "{{ nope('x') }}": "'nope' is undefined.",
    "{{ 1 + }}": "cannot render '{{ 1 + }}': unexpected 'end of template' (line 1).",
    "{% for x in %}": "cannot render",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}": "it nests or recurses too deeply.",
}


@pytest.mark.parametrize("template", list(ERRORS))
def test_template_errors_are_one_clear_line(folder, outside, capsys, template):
    line = run_template(folder, outside, capsys, template)
    assert line.startswith("block 'wh': config field 'schema': "), line
    assert ERRORS[template] in line, line
    assert " Fix: " in line


def test_a_nested_field_is_named_by_its_path(folder, outside, capsys):
    # an unknown config key is refused before rendering, so the nested value goes under a known key
    line = run_template(folder, outside, capsys, "main", extra_config='  memory_limit:\n    - "{{ 1/0 }}"\n')
    assert "config field 'memory_limit[0]': cannot render" in line, line


# --------------------------------------------------------------------------------------------
# Bombs: bounded in time and size, each with its message
# --------------------------------------------------------------------------------------------
BOMBS = {
    "string repeat": ("{{ 'ab' * 1500000000 }}", "a str times 1,500,000,000 would make 3,000,000,000 characters (at most 1,000,000)"),
    "list repeat": ("{{ [1] * 1500000000 }}", "a list times 1,500,000,000"),
    "nested loops": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "the templates ran more than 1,000,000 loop iterations",
    ),
    "loops over a list": (
        "{% set x = range(99999) | list %}{% for i in x %}{% for j in x %}x{% endfor %}{% endfor %}",
        "the templates ran more than 1,000,000 loop iterations",
    ),
    "range": ("{{ range(999999999) | list }}", "range() would give more than 100,000 numbers"),
    "power": ("{{ 2 ** 100000000 }}", "2 ** 100000000 has more than 3,322 bits"),
    "percent width": ("{{ '%0999999999d' % 1 }}", "would make 999,999,999 characters"),
    "percent star": ("{{ '%*d' % (999999999, 1) }}", "a '%*d' width taken from the arguments"),
    "format width": ("{{ '{:>999999999}'.format(1) }}", "the format spec '>999999999' would make 999,999,999 characters"),
    "nested format width": ("{{ '{:{}}'.format(1, 999999999) }}", "would make 999,999,999 characters"),
    "center filter": ("{{ 'a' | center(999999999) }}", "center(999999999) would make 999,999,999 characters"),
    "ljust": ("{{ 'a'.ljust(999999999) }}", "ljust(999999999) would make 999,999,999 characters"),
    "replace": ("{{ ('a' * 900000).replace('a', 'bb') }}", "replace() would make 1,800,000 characters"),
    "join": ("{{ ('x' * 1000).join(['a'] * 2000) }}", "characters"),
    "batch": ("{{ [1] | batch(999999999, 'x') | list }}", "batch(999,999,999) is over 100,000"),
    "to_bytes": ("{{ (1).to_bytes(999999999, 'big') }}", "to_bytes(999999999) would make 999,999,999 characters"),
    "doubling with ~": (
        "{% set ns = namespace(x='ab') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}",
        "'~' would make 1,048,576 characters",
    ),
    "doubling lists": (
        "{% set ns = namespace(x=['ab']) %}{% for i in range(60) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}",
        "would hold more than 1,000,000 characters written out",
    ),
    "captured output": (
        "{% set x %}{% for i in range(99999) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}{% endset %}{{ x | length }}",
        "the template writes more than 1,000,000 characters",
    ),
    "exponential macro": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "rendering took longer than 5 s",
    ),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_fail_with_their_bound(folder, outside, capsys, name):
    template, message = BOMBS[name]
    line = run_template(folder, outside, capsys, template)
    assert line.startswith("block 'wh': config field 'schema': "), line
    assert "goes past the template sandbox's bounds: " in line and message in line, line


LAUGHS = "  lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)
YAML_BOMBS = {
    "billion laughs": (LAUGHS, "the YAML holds more than 100,000 values (aliases counted as written out)"),
    "deep nesting": ("  deep: " + "[" * 5000 + "]" * 5000 + "\n", "the YAML is nested more than 100 levels deep"),
    "deep block nesting": ("".join("  " * (i + 1) + f"k{i}:\n" for i in range(200)), "the YAML is nested more than 100 levels deep"),
    "recursive alias": ("  loop: &me [*me]\n", "the alias *me refers to a value that contains it"),
    "duplicate key": ("  path: other.duckdb\n", "found the key 'path' twice"),
    "nested duplicate key": ("  memory_limit: {a: 1, a: 2}\n", "found the key 'a' twice"),
    "bad date": ("  when: 2024-13-01\n", "cannot read the value '2024-13-01': month must be in 1..12"),
}


@pytest.mark.parametrize("name", list(YAML_BOMBS))
def test_yaml_is_strict_and_bounded(folder, outside, capsys, name):
    config, message = YAML_BOMBS[name]
    line = run_template(folder, outside, capsys, "main", extra_config=config)
    assert line.startswith("block 'wh': the cell's YAML is invalid at line "), line
    assert message in line, line


def test_yaml_merge_keys_may_be_overridden():
    text = "base: &b {host: h, port: 1}\nother:\n  <<: *b\n  port: 2\n"
    assert safe_yaml.load(text) == {"base": {"host": "h", "port": 1}, "other": {"host": "h", "port": 2}}
    with pytest.raises(yaml.YAMLError, match="found the key 'port' twice"):
        safe_yaml.load("other:\n  <<: {port: 1}\n  port: 2\n  port: 3\n")


MEMORY_RUNNER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from jupyter_di.cli import main
sys.exit(main(["run", "-q", sys.argv[1]]))
"""


@pytest.mark.parametrize(
    ("schema", "extra_config", "message"),
    [
        ("{{ 'ab' * 1500000000 }}", "", "a str times 1,500,000,000 would make 3,000,000,000 characters"),
        (
            "{% set ns = namespace(l=[]) %}{% for i in range(99999) %}{% set ns.l = ns.l + ['x' * 900000 ~ i] %}{% endfor %}{{ ns.l | length }}",
            "",
            "characters written out",
        ),
        ("{{ range(99999) | map('center', 999999) | join }}", "", "characters written out"),
        ("main", LAUGHS, "the YAML holds more than 100,000 values"),
    ],
    ids=["string repeat", "accumulated list", "mapped filter", "billion laughs"],
)
def test_bombs_stay_under_one_gigabyte(folder, outside, schema, extra_config, message):
    """In a process that cannot have more than 1 GB, the bomb is the sandbox's clear error, not a MemoryError."""
    path = write_notebook(folder / "nb.ipynb", [SOURCE, CREDS, FRAME, destination(schema, extra_config)])
    done = subprocess.run([sys.executable, "-c", MEMORY_RUNNER, str(path)], capture_output=True, text=True, timeout=110)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr
    line = one_error_line(done.stderr)
    assert message in line, line
    assert_nothing_leaked(folder, outside, done.stdout, done.stderr)


def test_block_output_converts_library_values_to_plain_python():
    import collections
    import dataclasses
    import datetime as dt
    import decimal

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from jupyter_di.errors import ConfigError
    from jupyter_di.integration.block_output import pick

    @dataclasses.dataclass
    class Creds:
        host: str
        port: int

        def connect(self) -> None:  # a method: never reachable
            raise AssertionError("called")

    Pair = collections.namedtuple("Pair", "left right")
    zoned = pd.Timestamp("2024-01-01 10:00", tz="Europe/Lisbon")
    frame = pd.DataFrame({"n": np.array([7], dtype="int64"), "at": [zoned], "x": [np.nan]})
    table = pa.table({"d": pa.array([decimal.Decimal("1.50")]), "s": ["a"]})
    value = {"frame": frame, "table": table, "creds": Creds("h", 5), "pair": Pair(1, 2), "np": np.float32(0.5), "nat": pd.NaT}

    def get(*path):
        return pick(value, path, label="the output of block 'b'", where="block_output('b', ...)")

    assert get("frame", "n", 0) == 7 and type(get("frame", "n", 0)) is int
    at = get("frame", "at", 0)
    assert type(at) is dt.datetime and at == zoned.to_pydatetime() and type(at.tzinfo) is dt.timezone
    assert get("frame", 0, "n") == 7 and get("frame", "n") == [7]
    assert get("table", "d", 0) == decimal.Decimal("1.50") and get("table", 0) == {"d": decimal.Decimal("1.50"), "s": "a"}
    assert get("creds") == {"host": "h", "port": 5} and get("creds", "port") == 5
    assert get("pair", "right") == 2 and get("pair") == [1, 2]
    assert type(get("np")) is float and get("nat") is None
    for path, message in [
        (("creds", "connect"), "has no field 'connect'. It has: host, port."),
        (("table",), "is a pyarrow.lib.Table, which a template cannot use"),
        (("frame", "n", 3), "has no field 3. It has 1 item."),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            get(*path)
