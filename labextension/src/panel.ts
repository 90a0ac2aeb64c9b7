/**
 * The pipeline side panel (id "jupyter-di-pipeline"): the current notebook's block graph laid
 * out with dagre and drawn as SVG, nodes coloured by status, live from the kernel's "graph" and
 * "status" messages.  Before the kernel sent a graph, the blocks come from the notebook's cells
 * (parsed magic lines), all "idle", so the panel is useful before anything ran.
 *
 * Its Run buttons execute the extension's commands (commands.ts), which send their requests
 * through `request`, so a run started from the palette, a menu or a shortcut reports its errors
 * here too.
 *
 * Stable hooks for tests: #jupyter-di-run-pipeline, #jupyter-di-run-block,
 * #jupyter-di-connection[data-connected], g.jp-di-node[data-block-name][data-status],
 * #jupyter-di-runs tr[data-run-id], #jupyter-di-run-detail[data-run-id] (a clicked run's record).
 */
import { Graph, layout } from '@dagrejs/dagre';
import { Notification } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';
import { NotebookBridge } from './bridge';
import { childSummary, groupChildren } from './children';
import { formatDuration, parseMagicLine } from './magic';
import { IAck, IBlock, IRunBlock, IRunPipeline } from './protocol';
import { runErrors, streamRows } from './rundetail';

export const PANEL_ID = 'jupyter-di-pipeline';
const SVG_NS = 'http://www.w3.org/2000/svg';
const NODE_W = 150;
const NODE_H = 44;
/** Extra height of a dynamic block's node: its children's summary and status marks (3 rows of 20). */
const CHILD_ROW_H = 36;
const MAX_CHILD_MARKS = 60;

export const pipelineIcon = new LabIcon({
  name: 'jupyter-di:pipeline',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<rect x="2" y="3" width="8" height="5" rx="1"/><rect x="14" y="9.5" width="8" height="5" rx="1"/>' +
    '<rect x="2" y="16" width="8" height="5" rx="1"/>' +
    '<path d="M10 5.5h2v6.5h2v1h-3V6.5h-1zM10 18.5h2v-6h2v-1h-3v6h-1z"/></g></svg>'
});

/** Command ids the panel's buttons execute (registered by commands.ts). */
export interface IPanelCommands {
  runPipeline: string;
  runBlock: string;
}

export class PipelinePanel extends Widget {
  constructor(commands: CommandRegistry, ids: IPanelCommands) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-di-panel');
    this.title.icon = pipelineIcon;
    this.title.caption = 'jupyter-di pipeline';

    const toolbar = document.createElement('div');
    toolbar.className = 'jp-di-toolbar';
    this._runPipeline = button('jupyter-di-run-pipeline', 'Run pipeline', () => {
      void commands.execute(ids.runPipeline);
    });
    this._runBlock = button('jupyter-di-run-block', 'Run block', () => {
      if (this._selected !== null) {
        void commands.execute(ids.runBlock, { name: this._selected });
      }
    });
    this._connection = document.createElement('span');
    this._connection.id = 'jupyter-di-connection';
    toolbar.append(this._runPipeline, this._runBlock, this._connection);

    this._error = document.createElement('div');
    this._error.id = 'jupyter-di-error';
    this._error.className = 'jp-di-error';

    this._svg = document.createElementNS(SVG_NS, 'svg');
    this._svg.id = 'jupyter-di-graph';
    this._svg.classList.add('jp-di-graph');
    this._empty = document.createElement('div');
    // its own id: the Runs view below has a 'No runs recorded yet.' of the same class
    this._empty.id = 'jupyter-di-graph-empty';
    this._empty.className = 'jp-di-empty';
    this._empty.textContent =
      'No blocks yet: add a %%di_source, %%di_block or %%di_destination cell.';
    this._runs = document.createElement('div');
    this._runs.id = 'jupyter-di-runs';
    this._runs.className = 'jp-di-runs';
    this._runDetail = document.createElement('div');
    this._runDetail.id = 'jupyter-di-run-detail';
    this._runDetail.className = 'jp-di-run-detail';
    this.node.append(toolbar, this._error, this._svg, this._empty, this._runs, this._runDetail);
    this._render();
  }

  /** Show `panel`'s pipeline (the current notebook), or nothing. */
  setNotebook(panel: NotebookPanel | null, bridge: NotebookBridge | null): void {
    if (this._bridge !== null) {
      this._bridge.changed.disconnect(this._schedule, this);
      this._bridge.failed.disconnect(this._onFailed, this);
    }
    this._panel?.model?.contentChanged.disconnect(this._schedule, this);
    this._panel = panel;
    this._bridge = bridge;
    this._selected = null;
    this._selectedRun = null;
    this._error.textContent = '';
    bridge?.changed.connect(this._schedule, this);
    bridge?.failed.connect(this._onFailed, this);
    panel?.model?.contentChanged.connect(this._schedule, this);
    this._schedule();
  }

  /** True when the current notebook's kernel has jupyter-di loaded and answered our hello. */
  get connected(): boolean {
    return this._bridge?.connected ?? false;
  }

  /** Emitted after every render: the connection, the blocks or the selection may have changed. */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  /** Send a run request to the current notebook's kernel; false (and an error shown) if it cannot. */
  request(request: IRunPipeline | IRunBlock): boolean {
    this._error.textContent = '';
    if (this._bridge === null || !this._bridge.send(request)) {
      this._error.textContent =
        'The kernel has no jupyter-di: run `%load_ext jupyter_di` in the notebook first.';
      return false;
    }
    return true;
  }

  /** Blocks shown: the kernel's graph if it sent one, else the cells' magic lines. */
  blocks(): IBlock[] {
    const fromKernel = this._bridge?.blocks ?? [];
    if (fromKernel.length > 0) {
      return [...fromKernel];
    }
    const blocks: IBlock[] = [];
    for (const cell of this._panel?.model?.cells ?? []) {
      const line = cell.type === 'code' ? parseMagicLine(cell.sharedModel.getSource()) : null;
      if (line !== null && line.error === null) {
        blocks.push({
          name: line.name,
          kind: line.kind,
          upstream: line.upstream,
          cell_id: cell.id,
          status: 'idle',
          duration_s: null,
          message: null
        });
      }
    }
    return blocks;
  }

  /** Coalesce bursts of status messages and keystrokes into one render per frame. */
  private _schedule(): void {
    if (this._frame === 0) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._render();
      });
    }
  }

  private _onFailed(_: NotebookBridge, ack: IAck): void {
    const text = `${ack.request_type} failed: ${ack.error ?? 'unknown error'}`;
    this._error.textContent = text;
    Notification.error(`jupyter-di: ${text}`, { autoClose: 8000 });
  }

  private _render(): void {
    const connected = this._bridge?.connected ?? false;
    this._connection.dataset.connected = String(connected);
    this._connection.textContent =
      this._bridge === null
        ? 'no notebook'
        : connected
          ? 'kernel connected'
          : 'kernel not connected';
    this._runPipeline.disabled = !connected;
    this._runBlock.disabled = !connected || this._selected === null;
    this._renderRuns();
    this._renderRunDetail();
    this._stateChanged.emit();

    const { blocks, children } = groupChildren(this.blocks());
    this._empty.style.display = blocks.length ? 'none' : '';
    this._svg.replaceChildren();
    if (blocks.length === 0) {
      this._svg.setAttribute('width', '0');
      this._svg.setAttribute('height', '0');
      return;
    }
    const g = new Graph();
    g.setGraph({ rankdir: 'TB', nodesep: 24, ranksep: 36, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    const names = new Set(blocks.map(b => b.name));
    const height = (name: string): number => NODE_H + (children.has(name) ? CHILD_ROW_H : 0);
    for (const block of blocks) {
      g.setNode(block.name, { width: NODE_W, height: height(block.name) });
    }
    for (const block of blocks) {
      for (const up of block.upstream) {
        if (names.has(up)) {
          g.setEdge(up, block.name);
        }
      }
    }
    layout(g);
    const size = g.graph() as { width?: number; height?: number };
    this._svg.append(arrowMarker());
    this._svg.setAttribute('width', String(Math.ceil(size.width ?? 0)));
    this._svg.setAttribute('height', String(Math.ceil(size.height ?? 0)));

    for (const edge of g.edges()) {
      const points = (g.edge(edge) as { points?: { x: number; y: number }[] }).points ?? [];
      const path = svg('path', {
        class: 'jp-di-edge',
        d: points.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' '),
        'data-from': edge.v,
        'data-to': edge.w,
        'marker-end': 'url(#jupyter-di-arrow)'
      });
      this._svg.append(path);
    }
    for (const block of blocks) {
      const pos = g.node(block.name) as { x: number; y: number };
      const node = svg('g', {
        class: 'jp-di-node' + (block.name === this._selected ? ' jp-di-selected' : ''),
        transform: `translate(${pos.x - NODE_W / 2},${pos.y - height(block.name) / 2})`,
        'data-block-name': block.name,
        'data-status': block.status,
        'data-kind': block.kind
      });
      const title = svg('title', {});
      title.textContent = block.message ? `${block.name}: ${block.message}` : block.name;
      const label = svg('text', { x: '8', y: '18', class: 'jp-di-node-name' });
      label.textContent = truncate(block.name, 18);
      const detail = svg('text', { x: '8', y: '35', class: 'jp-di-node-detail' });
      detail.textContent = [block.kind, block.status, formatDuration(block.duration_s)]
        .filter(s => s)
        .join(' · ');
      node.append(
        title,
        svg('rect', { width: String(NODE_W), height: String(height(block.name)), rx: '6' }),
        label,
        detail
      );
      const kids = children.get(block.name);
      if (kids !== undefined) {
        // a dynamic block's children: a count by status, and one small square per child
        const summary = svg('text', { x: '8', y: '52', class: 'jp-di-node-detail' });
        summary.textContent = truncate(childSummary(kids), 30);
        node.append(summary);
        kids.slice(0, MAX_CHILD_MARKS).forEach((kid, i) => {
          const mark = svg('rect', {
            class: 'jp-di-child',
            x: String(8 + (i % 20) * 7),
            y: String(58 + Math.floor(i / 20) * 7),
            width: '5',
            height: '5',
            'data-block-name': kid.name,
            'data-status': kid.status
          });
          const tip = svg('title', {});
          tip.textContent = kid.message
            ? `${kid.name}: ${kid.status}: ${kid.message}`
            : `${kid.name}: ${kid.status}`;
          mark.append(tip);
          node.append(mark);
        });
        title.textContent += `\n${childSummary(kids)}`;
      }
      node.addEventListener('click', () => this._select(block));
      this._svg.append(node);
    }
  }

  /**
   * The Runs view: the run history's newest runs (CLI and kernel), newest first.  A run started
   * from this panel has no cell to print its report in: its row (status, rows, the first error)
   * is where it shows; `jupyter-di runs show ID` prints the whole report.
   */
  private _renderRuns(): void {
    const runs = this._bridge?.runs ?? [];
    const heading = document.createElement('h3');
    heading.className = 'jp-di-runs-heading';
    heading.textContent = 'Runs';
    if (runs.length === 0) {
      const none = document.createElement('div');
      none.className = 'jp-di-empty';
      none.textContent = 'No runs recorded yet.';
      this._runs.replaceChildren(heading, none);
      return;
    }
    const table = document.createElement('table');
    table.className = 'jp-di-runs-table';
    const head = table.createTHead().insertRow();
    for (const label of ['#', 'started', 'from', 'status', 'rows', 'time']) {
      const th = document.createElement('th');
      th.textContent = label;
      head.append(th);
    }
    const body = table.createTBody();
    for (const run of runs) {
      const row = body.insertRow();
      row.dataset.runId = String(run.id);
      row.dataset.status = run.status;
      row.className = `jp-di-run jp-di-run-${run.status}`;
      const seconds = (Date.parse(run.ended) - Date.parse(run.started)) / 1000;
      const cells = [
        String(run.id),
        formatStarted(run.started),
        run.origin,
        run.status,
        run.rows.toLocaleString('en-US'),
        Number.isFinite(seconds) ? formatDuration(seconds) : ''
      ];
      for (const text of cells) {
        row.insertCell().textContent = text;
      }
      row.title = `started ${run.started}; click for its blocks, streams and bookmarks (jupyter-di runs show ${run.id})`;
      row.tabIndex = 0;
      if (run.id === this._selectedRun) {
        row.classList.add('jp-di-run-selected');
      }
      const open = (): void => this._openRun(run.id);
      row.addEventListener('click', open);
      row.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          open();
        }
      });
      if (run.error) {
        const error = body.insertRow();
        error.className = 'jp-di-run-error';
        const cell = error.insertCell();
        cell.colSpan = cells.length;
        cell.textContent = run.error;
      }
    }
    this._runs.replaceChildren(heading, table);
  }

  /** Ask the kernel for a run's whole record; it shows below the Runs list when it arrives. */
  private _openRun(id: number): void {
    this._selectedRun = id;
    this._error.textContent = '';
    if (this._bridge === null || !this._bridge.send({ type: 'request_run', id })) {
      this._error.textContent =
        'The kernel has no jupyter-di: run `%load_ext jupyter_di` in the notebook first.';
    }
    this._render();
  }

  /**
   * The clicked run's details: its blocks (status, time, note), its streams (rows, table, a
   * source stream's bookmark before and after) and its errors and warnings, each once below.
   */
  private _renderRunDetail(): void {
    const id = this._selectedRun;
    if (id === null) {
      this._runDetail.replaceChildren();
      delete this._runDetail.dataset.runId;
      return;
    }
    this._runDetail.dataset.runId = String(id);
    const heading = document.createElement('h3');
    heading.className = 'jp-di-runs-heading';
    const close = button('jupyter-di-run-detail-close', 'Close', () => {
      this._selectedRun = null;
      this._render();
    });
    const record = this._bridge?.runRecord ?? null;
    if (record === null || record.id !== id) {
      heading.textContent = `Run #${id}`;
      const wait = document.createElement('div');
      wait.className = 'jp-di-empty';
      wait.textContent = 'Loading…';
      this._runDetail.replaceChildren(heading, wait, close);
      return;
    }
    const run = record.run;
    if (run === null) {
      heading.textContent = `Run #${id}`;
      const none = document.createElement('div');
      none.className = 'jp-di-empty';
      none.textContent = "This run is not in this notebook's run history.";
      this._runDetail.replaceChildren(heading, none, close);
      return;
    }
    this._runDetail.dataset.status = run.status;
    heading.textContent = `Run #${run.id} · ${run.origin} · ${run.status}`;
    const when = document.createElement('div');
    when.className = 'jp-di-run-when';
    const seconds = (Date.parse(run.ended) - Date.parse(run.started)) / 1000;
    when.textContent =
      `started ${formatStarted(run.started)}` +
      (Number.isFinite(seconds) ? `, took ${formatDuration(seconds)}` : '');
    const blocks = detailTable(
      'jp-di-run-blocks',
      ['block', 'kind', 'status', 'time', 'note'],
      run.blocks.map(b => [
        b.name,
        b.kind ?? '',
        b.status,
        b.seconds === null ? '' : formatDuration(b.seconds),
        b.reason ?? ''
      ])
    );
    const streams = document.createElement('div');
    streams.className = 'jp-di-run-streams';
    for (const [block, stream, rows, table, before, after] of streamRows(run)) {
      streams.append(streamCard(block, stream, rows, table, before, after));
    }
    const errors = document.createElement('ul');
    errors.className = 'jp-di-run-errors';
    for (const line of runErrors(run)) {
      const item = document.createElement('li');
      item.textContent = line;
      errors.append(item);
    }
    this._runDetail.replaceChildren(heading, when, blocks, streams, errors, close);
  }

  /** Select a node, then scroll to and activate its cell. */
  private _select(block: IBlock): void {
    this._selected = block.name;
    this._render();
    const panel = this._panel;
    if (panel === null) {
      return;
    }
    const notebook = panel.content;
    const index = notebook.widgets.findIndex(
      cell =>
        (block.cell_id !== null && cell.model.id === block.cell_id) ||
        parseMagicLine(cell.model.sharedModel.getSource())?.name === block.name
    );
    if (index >= 0) {
      notebook.activeCellIndex = index;
      void notebook.scrollToCell(notebook.widgets[index], 'center');
    }
  }

  private _panel: NotebookPanel | null = null;
  private _bridge: NotebookBridge | null = null;
  private _selected: string | null = null;
  private _frame = 0;
  private _stateChanged = new Signal<this, void>(this);
  private _svg: SVGSVGElement;
  private _empty: HTMLDivElement;
  private _runs: HTMLDivElement;
  private _runDetail: HTMLDivElement;
  private _selectedRun: number | null = null;
  private _error: HTMLDivElement;
  private _connection: HTMLSpanElement;
  private _runPipeline: HTMLButtonElement;
  private _runBlock: HTMLButtonElement;
}

function button(id: string, label: string, onClick: () => void): HTMLButtonElement {
  const el = document.createElement('button');
  el.id = id;
  el.className = 'jp-Button jp-mod-styled jp-mod-accept jp-di-button';
  el.textContent = label;
  el.addEventListener('click', onClick);
  return el;
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: { [name: string]: string }
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    el.setAttribute(name, value);
  }
  return el;
}

function arrowMarker(): SVGDefsElement {
  const defs = svg('defs', {});
  const marker = svg('marker', {
    id: 'jupyter-di-arrow',
    viewBox: '0 0 10 10',
    refX: '10',
    refY: '5',
    markerWidth: '7',
    markerHeight: '7',
    orient: 'auto-start-reverse'
  });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'jp-di-arrow' }));
  defs.append(marker);
  return defs;
}

/** An ISO time as the user's local "MM-DD HH:MM:SS" (the side panel is narrow; the year is in the title). */
function formatStarted(iso: string): string {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) {
    return iso;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${pad(when.getMonth() + 1)}-${pad(when.getDate())} ` +
    `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`
  );
}

function truncate(text: string, max: number): string {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

/** One stream of a run: "block · stream: N rows → table", then a source's bookmarks on their own lines
 * (the side panel is narrow: a table of six columns hid the bookmarks off to the right). */
function streamCard(
  block: string,
  stream: string,
  rows: string,
  table: string,
  before: string,
  after: string
): HTMLDivElement {
  const card = document.createElement('div');
  card.className = 'jp-di-run-stream';
  card.dataset.block = block;
  card.dataset.stream = stream;
  const head = document.createElement('div');
  const name = document.createElement('b');
  name.textContent = `${block} · ${stream}`;
  const count = document.createElement('span');
  count.className = 'jp-di-run-rows';
  count.textContent = rows;
  head.append(name, ': ', count, rows === '1' ? ' row' : ' rows');
  if (table) {
    const target = document.createElement('span');
    target.className = 'jp-di-run-table';
    target.textContent = table;
    head.append(' → table ', target);
  }
  card.append(head);
  if (before || after) {
    for (const [label, value, cls] of [
      ['bookmark before', before, 'jp-di-run-before'],
      ['bookmark after', after, 'jp-di-run-after']
    ]) {
      const line = document.createElement('div');
      line.className = 'jp-di-run-bookmark';
      const text = document.createElement('span');
      text.className = cls;
      text.textContent = value;
      line.append(`${label}: `, text);
      card.append(line);
    }
  }
  return card;
}

/** A small table of text cells (the run details' blocks). */
function detailTable(className: string, labels: string[], rows: string[][]): HTMLTableElement {
  const table = document.createElement('table');
  table.className = `jp-di-runs-table ${className}`;
  const head = table.createTHead().insertRow();
  for (const label of labels) {
    const th = document.createElement('th');
    th.textContent = label;
    head.append(th);
  }
  const body = table.createTBody();
  for (const cells of rows) {
    const row = body.insertRow();
    for (const text of cells) {
      row.insertCell().textContent = text;
    }
  }
  return table;
}
