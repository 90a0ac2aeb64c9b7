"""Kernel-side cost of the source panel on a large catalog: 500 streams x 50 columns.

Run: ``python benchmarks/panels.py`` (options: --streams, --columns, --repeat).

A fake in-memory source is registered with ``registry.register``; the cell's
YAML lists every stream (the worst case for parsing and dumping).  Measured,
median of --repeat runs, all in the kernel process, no browser:

- discover: the fake source's catalog, written to the catalog cache file;
- build panel: parse the YAML, read the cached catalog, build the first tab (Credentials; the
  others are built when first opened), with the widget models it makes; the baseline builds every
  tab up front as panels did before issue 21 (the work a saved notebook's state then carried);
- open the Streams tab (its 500-row table) and the Schema properties tab (50 columns) on a fresh panel;
- bulk edit streams: one bulk-edit message from the streams table setting
  replication_method=INCREMENTAL and run_in_parallel=true on all streams,
  including validation, the canonical YAML (DIConfig.dump), the write-back
  and the refreshed table rows;
- bulk edit columns: exclude 25 of the 50 columns of one stream.

Target: under 1 s each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402
from ipywidgets.widgets.widget import _instances  # noqa: E402

from jupyter_di.connectors import registry  # noqa: E402
from jupyter_di.connectors.base import ConfigField, ConnectorSpec, ReadRequest, Source  # noqa: E402
from jupyter_di.connectors.catalog import stream_entry  # noqa: E402
from jupyter_di.notebook.panels.catalog_cache import CatalogCache  # noqa: E402
from jupyter_di.notebook.panels.context import PanelContext  # noqa: E402
from jupyter_di.notebook.panels.panel import BlockPanel  # noqa: E402
from jupyter_di.notebook.panels.writeback import WriteBack  # noqa: E402
from jupyter_di.pipeline.block import Block  # noqa: E402
from jupyter_di.pipeline.pipeline import Pipeline  # noqa: E402
from jupyter_di.secrets import SecretStore  # noqa: E402

STREAMS, COLUMNS = 500, 50


class WideSource(Source):
    """Every stream has the same wide schema; nothing is read from anywhere."""

    name = "bench_wide"

    def discover(self, streams: list[str] | None = None) -> dict[str, Any]:
        props = {f"c{j}": {"type": ["null", "integer" if j % 2 else "string"]} for j in range(COLUMNS)}
        names = [f"stream_{i:03d}" for i in range(STREAMS)]
        return {
            "streams": [
                stream_entry(n, props, key_properties=["c1"], valid_replication_keys=["c1"], sql_datatypes={c: "bigint" for c in props})
                for n in names
                if streams is None or n in streams
            ]
        }

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        schema = pa.schema([pa.field("c1", pa.int64())])
        return pa.RecordBatchReader.from_batches(schema, [])


def timed(fn, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    global STREAMS, COLUMNS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--columns", type=int, default=COLUMNS)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    STREAMS, COLUMNS = args.streams, args.columns
    registry.register(ConnectorSpec("bench_wide", "Benchmark source", [ConfigField("path", "path", required=True)], source=WideSource))

    work = Path(tempfile.mkdtemp(prefix="jdi-bench-"))
    pipeline = Pipeline("bench", state_path=work / "state.sqlite")
    ctx = PanelContext(
        pipeline=pipeline, writeback=WriteBack(None), catalogs=CatalogCache(work / "catalogs"), secrets=SecretStore(work / "secrets.json")
    )
    streams = "".join(f"  stream_{i:03d}:\n    bookmark_properties: [c1]\n    key_properties: [c1]\n" for i in range(STREAMS))
    block = Block("wide", "source", f"source: bench_wide\nconfig:\n  path: x\nstreams:\n{streams}", lang="yaml")

    rows: list[tuple[str, float, str]] = []
    probe = BlockPanel(block, ctx)
    secs, _ = timed(lambda: ctx.discover(probe.editor), args.repeat)
    rows.append(("discover (fake source) + cache file", secs, f"{STREAMS} streams"))
    probe.close()

    panels: list[BlockPanel] = []

    def build(every_tab: bool = False) -> BlockPanel:
        ctx.catalogs._memory.clear()  # as after a kernel restart: read the cache file
        panel = BlockPanel(block, ctx)
        if every_tab:  # the baseline: every tab built up front, as before issue 21
            for title in panel.titles:
                panel.section(title)
        panels.append(panel)
        return panel

    before = len(_instances)
    secs, _ = timed(lambda: build(every_tab=True), args.repeat)
    eager_models = (len(_instances) - before) // args.repeat
    rows.append(("baseline: build panel with every tab", secs, f"{eager_models} widget models"))
    before = len(_instances)
    secs, panel = timed(build, args.repeat)
    lazy_models = (len(_instances) - before) // args.repeat
    rows.append(("build panel (tabs built when opened)", secs, f"{lazy_models} widget models"))
    for title, note in (("Streams", f"{STREAMS} table rows"), ("Schema properties", f"{COLUMNS} columns")):
        fresh = iter([build() for _ in range(args.repeat)])

        def open_tab(title: str = title, fresh: Iterator[BlockPanel] = fresh) -> None:
            p = next(fresh)
            p.tabs.selected_index = p.titles.index(title)  # as a click on the tab does

        secs, _ = timed(open_tab, args.repeat)
        rows.append((f"open the {title} tab", secs, note))

    ids = [r["id"] for r in panel.streams.table.rows]
    flip = iter([("INCREMENTAL", True), ("FULL_TABLE", False)] * args.repeat)

    def bulk() -> str:
        method, parallel = next(flip)
        panel.streams.table._handle_custom_msg(
            {"type": "edit", "ids": ids, "changes": {"replication_method": method, "run_in_parallel": parallel}}, []
        )
        return ctx.writeback.pending_source(panel.editor.block)

    secs, source = timed(bulk, args.repeat)
    rows.append(("bulk edit 2 settings on all streams -> YAML", secs, f"{len(source):,} chars of YAML"))
    assert source.count("replication_method: INCREMENTAL") in (0, STREAMS)

    cols = [f"c{j}" for j in range(0, COLUMNS, 2)]
    toggle = iter([False, True] * args.repeat)
    secs, _ = timed(
        lambda: panel.columns.table._handle_custom_msg({"type": "edit", "ids": cols, "changes": {"include": next(toggle)}}, []), args.repeat
    )
    rows.append((f"bulk edit columns ({len(cols)} of {COLUMNS})", secs, "include/exclude"))

    print(f"\npanel benchmark: {STREAMS} streams x {COLUMNS} columns, median of {args.repeat}")
    print(f"uptime: {os.popen('uptime').read().strip()}\n")
    print(f"{'step':<44} {'seconds':>8}  note")
    print("-" * 80)
    for name, secs, note in rows:
        flag = "" if secs < 1 else "  (over the 1 s target)"
        print(f"{name:<44} {secs:>8.3f}  {note}{flag}")
    for p in panels:
        p.close()
    pipeline.close()


if __name__ == "__main__":
    main()
