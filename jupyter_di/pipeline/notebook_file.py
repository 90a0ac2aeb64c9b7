"""Reading a pipeline out of a notebook file, for headless runs.

Block cells (``%%di_source``, ``%%di_destination``, ``%%di_block``) become
blocks.  Plain code cells run where they stand, as "Run All" in the kernel
would run them: every block in a cell above a plain cell has run before that
plain cell runs, and the plain cells' names (imports, helper functions,
constants) are visible to the blocks.  Consecutive block cells run together as
one graph, in parallel where they can.  IPython-only lines in plain cells are handled as
follows: ``%load_ext``/``%di_run``/``%di_graph`` lines are dropped (the CLI *is*
the pipeline run), ``%config JupyterDI.x = v`` is applied, and any other
``%``/``!`` line is dropped with a warning.  A plain cell tagged
``jupyter-di-skip`` is not run headless.

Why plain JSON and not nbformat: nbformat validation imports jsonschema, which
costs a third of a second of start-up; we only need cells, ids and tags.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DIError
from ..state.api import pipeline_name  # noqa: F401 - re-exported: the name state is kept under
from .block import Block
from .magic_line import parse_cell

SKIP_TAG = "jupyter-di-skip"
CONFIG_LINE = re.compile(r"^%config\s+JupyterDI\.(?P<name>\w+)\s*=\s*(?P<value>.+)$")
QUIET_MAGICS = ("%load_ext", "%reload_ext", "%di_run", "%di_graph", "%di_state", "%config", "%matplotlib")


@dataclass
class PlainCell:
    index: int
    code: str


@dataclass
class NotebookPipeline:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    steps: list[PlainCell | Block] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        configured = self.config.get("pipeline_name")
        return configured if isinstance(configured, str) and configured else self.path.stem


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _setup_code(source: str, index: int, notebook: NotebookPipeline) -> str:
    kept = []
    for line in source.splitlines():
        stripped = line.strip()
        match = CONFIG_LINE.match(stripped)
        if match:
            try:
                notebook.config[match["name"]] = ast.literal_eval(match["value"].strip())
            except (ValueError, SyntaxError):
                notebook.warnings.append(f"cell {index}: ignored {stripped!r} (the value must be a literal)")
            kept.append("")
        elif stripped.startswith(("%", "!")):
            if not stripped.startswith(QUIET_MAGICS):
                notebook.warnings.append(f"cell {index}: skipped IPython line {stripped!r} in a headless run")
            kept.append("")
        else:
            kept.append(line)
    return "\n".join(kept)


def load_notebook(path: Path | str) -> NotebookPipeline:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"notebook {str(path)!r} does not exist.", fix="check the path.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{str(path)!r} is not a notebook file: {exc}.") from None
    notebook = NotebookPipeline(path=path)
    for index, cell in enumerate(data.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        try:
            block = parse_cell(source, cell.get("id"))
        except DIError as exc:
            raise ConfigError(f"cell {index}: {exc}") from None
        if block is not None:
            if any(b.name == block.name for b in notebook.blocks):
                raise ConfigError(
                    f"cell {index}: the name {block.name!r} is already used by another cell.",
                    block=block.name,
                    fix="give one of the blocks a different name.",
                )
            notebook.blocks.append(block)
            notebook.steps.append(block)
        elif SKIP_TAG not in cell.get("metadata", {}).get("tags", []):
            code = _setup_code(source, index, notebook)
            if code.strip():
                notebook.steps.append(PlainCell(index, code))
    return notebook
