"""One grammar for the magic line (``%%di_source NAME --upstream A B ...``), three parsers.

tests/magic_line_cases.json lists cells and what they declare.  The same file drives
labextension/src/magic.test.ts (the JupyterLab extension's parser, which draws badges and the
side panel).  Here it checks the headless parser (``parse_cell``, what ``jupyter-di run`` reads
from a notebook file) and the kernel's path (IPython's input transformers, then the cell magic's
own argument parser, then ``block_from_args``): a cell the kernel runs as a block is the block
the CLI and the extension see.  A seeded fuzz then compares parse_cell with the extension's
compiled parser on thousands of generated cells.
"""

from __future__ import annotations

import ast
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jupyter_di.errors import DIError
from jupyter_di.pipeline.magic_line import block_from_args, parse_cell

ROOT = Path(__file__).resolve().parents[2]
CASES = json.loads((ROOT / "tests" / "magic_line_cases.json").read_text("utf-8"))["cases"]
COMPILED = ROOT / "labextension" / "lib" / "magic.js"
ERROR = {"error": True}
KEYS = ("kind", "name", "upstream", "lang", "output", "replicate", "dynamic", "reduce_output")


def _declared(block: Any) -> dict[str, Any]:
    declared = {"kind": block.kind, "name": block.name, "upstream": block.upstream, "lang": block.lang, "output": block.output_var}
    # the flags of replica and dynamic blocks are listed only when given
    if block.replicate is not None:
        declared["replicate"] = block.replicate
    if block.dynamic:
        declared["dynamic"] = True
    if block.reduce_output:
        declared["reduce_output"] = True
    return declared


def cli_result(cell: str) -> dict[str, Any] | None:
    try:
        block = parse_cell(cell)
    except DIError:
        return ERROR
    return None if block is None else _declared(block)


def kernel_result(cell: str) -> dict[str, Any] | None:
    """What the kernel does with the cell: IPython turns it into run_cell_magic(name, line, body)."""
    from IPython.core.error import UsageError
    from IPython.core.inputtransformer2 import TransformerManager

    from jupyter_di.notebook.magics import DIMagics

    code = TransformerManager().transform_cell(cell)
    try:
        statement = ast.parse(code).body
    except SyntaxError:  # Python code the kernel cannot run: not a block cell either
        return None
    call = statement[0].value if len(statement) == 1 and isinstance(statement[0], ast.Expr) else None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "run_cell_magic"):
        return None
    magic, line, body = (ast.literal_eval(arg) for arg in call.args)
    kind = {"di_source": "source", "di_destination": "destination", "di_block": "python"}.get(magic)
    if kind is None:
        return None
    if not line.strip():  # DIMagics._block: "needs a block name"
        return ERROR
    try:
        args = getattr(DIMagics, magic).parser.parse_argstring(line)
        return _declared(block_from_args(kind, args, body))  # type: ignore[arg-type]
    except (UsageError, DIError, ValueError):  # ValueError: arg_split's unclosed quote
        return ERROR


def _id(index: int) -> str:
    return f"{index:03d}-{CASES[index]['why'][:40]}"


def test_cases_cover_the_grammar() -> None:
    expects = [c["expect"] for c in CASES]
    assert len(CASES) >= 100
    assert len({c["cell"] for c in CASES}) == len(CASES), "a cell is listed twice"
    assert sum(e is None for e in expects) >= 15
    assert sum(e == ERROR for e in expects) >= 40
    assert sum(isinstance(e, dict) and "kind" in e for e in expects) >= 40
    for e in expects:
        assert e is None or e == ERROR or {"kind", "name", "upstream", "lang", "output"} <= set(e) <= set(KEYS), e


@pytest.mark.parametrize("index", range(len(CASES)), ids=_id)
def test_parse_cell(index: int) -> None:
    case = CASES[index]
    assert cli_result(case["cell"]) == case["expect"], case["why"]


@pytest.mark.parametrize("index", range(len(CASES)), ids=_id)
def test_kernel_magic(index: int) -> None:
    pytest.importorskip("IPython")
    case = CASES[index]
    assert kernel_result(case["cell"]) == case["expect"], case["why"]


def test_parse_cell_keeps_the_body() -> None:
    assert parse_cell("\n%%di_source shop -u a\r\nsource: files\r\n").body == "source: files\r\n"
    # an indented cell is dedented as IPython does before it calls the magic
    assert parse_cell("  %%di_source shop\n  source: files\n    x: 1\n").body == "source: files\n  x: 1\n"


# -- the extension's parser against parse_cell on generated cells --------------------------------

NAMES = ["a", "b", "shop", "x_1", "_p", "A9"]
ODD = ["1a", "é", "'a'", '"b"', "a,b", "", "-", "-1", "--", "-x", "--=a", "-h", "-l", "YAML", "#"]
SPACES = [" ", " ", " ", "  ", "\t", " \t "]
BEFORE = ["", "", "", "\n", " \n", "\r\n", "  ", "\t", "\u00a0\n", "x\n"]
MAGICS = ["%%di_source", "%%di_destination", "%%di_block", "%%di_block", "%%di_sourcex", "%di_source", "%%di_block?"]
AFTER = ["", "", "\nbody: 1\n", "\r\nbody", "\rbody", "\x0cx", " ", "\t", "\u00a0", "\x1f", "\ufeff"]


def _words(rng: random.Random) -> list[str]:
    """A name and a few flags with values, shuffled now and then, with an odd token here and there."""
    groups = [[rng.choice(NAMES)]]
    for _ in range(rng.randint(0, 3)):
        flag = rng.choice(["upstream", "lang", "output", "inline", "odd"])
        if flag == "upstream":
            groups.append([rng.choice(["-u", "--upstream", "--up", "--u"]), *rng.sample(NAMES, rng.randint(0, 3))])
        elif flag == "lang":
            groups.append([rng.choice(["--lang", "--l", "--la"]), rng.choice(["yaml", "python", "python"])])
        elif flag == "output":
            groups.append([rng.choice(["-o", "--output", "--out"]), rng.choice(NAMES)])
        elif flag == "inline":
            form = rng.choice(["-u{}", "-u={}", "--upstream={}", "--up={}", "-o{}", "-o={}", "--output={}", "--lang={}"])
            groups.append([form.format(rng.choice(NAMES + ["python", "yaml", ""]))])
        else:
            groups.append([rng.choice(ODD)])
    if rng.random() < 0.3:
        rng.shuffle(groups)
    return [word for group in groups for word in group]


def _generated(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    cells = []
    for _ in range(count):
        line = "".join(word + rng.choice(SPACES) for word in _words(rng))
        cells.append(rng.choice(BEFORE) + rng.choice(MAGICS) + rng.choice([" ", " ", "\t"]) + line + rng.choice(AFTER))
    return cells


def test_extension_parser_agrees_on_generated_cells() -> None:
    node = shutil.which("node")
    if node is None or not COMPILED.exists():
        pytest.skip("needs node and the built extension (.ci/install_frontend.sh)")
    cells = _generated(seed=14, count=4000)
    script = (
        f"import {{ parseMagicLine }} from {json.dumps(COMPILED.as_uri())};\n"
        "import { readFileSync } from 'node:fs';\n"
        "const out = JSON.parse(readFileSync(0, 'utf8')).map(cell => {\n"
        "  const r = parseMagicLine(cell);\n"
        "  return r === null ? null : r.error !== null ? { error: true }\n"
        "    : { kind: r.kind, name: r.name, upstream: r.upstream, lang: r.lang, output: r.output };\n"
        "});\n"
        "process.stdout.write(JSON.stringify(out));\n"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], input=json.dumps(cells), capture_output=True, text=True, timeout=120, check=True
    )
    extension = json.loads(done.stdout)
    wrong = [(cell, cli_result(cell), ts) for cell, ts in zip(cells, extension) if cli_result(cell) != ts]
    assert not wrong, f"{len(wrong)} of {len(cells)} differ, e.g. {wrong[:5]}"
    accepted = sum(isinstance(r, dict) and "kind" in r for r in extension)
    assert accepted > len(cells) // 10, accepted  # the generator reaches valid lines too
