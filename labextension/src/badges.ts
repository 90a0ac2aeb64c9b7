/**
 * Block cells in one notebook view: a badge (kind, name, upstreams, last status and duration,
 * or why the kernel would refuse the magic line) above each cell whose first line is
 * %%di_source / %%di_destination / %%di_block, and YAML
 * highlighting for the body of YAML source/destination cells.
 *
 * YAML highlighting works by setting the cell model's editor mime type to text/x-yaml; the
 * notebook resets every cell's mime type to the kernel language when the kernel changes or a
 * cell is added, so we put it back whenever that happens (mimeTypeChanged).  The mime type is
 * not saved in the .ipynb file.
 */
import { Cell, ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { NotebookBridge } from './bridge';
import { formatDuration, IMagicLine, parseMagicLine } from './magic';
import { IBlock } from './protocol';

export const YAML_MIME = 'text/x-yaml';
const BADGE_CLASS = 'jp-di-badge';

export class CellBadges {
  constructor(
    private readonly panel: NotebookPanel,
    private readonly bridge: NotebookBridge
  ) {
    bridge.changed.connect(this.refresh, this);
    panel.content.model?.cells.changed.connect(this._onCellsChanged, this);
    panel.content.modelChanged.connect(this._onModelChanged, this);
    this._onCellsChanged();
  }

  /** Re-render every badge (statuses changed, cells moved). */
  refresh(): void {
    const byCell = new Map<string, IBlock>();
    const byName = new Map<string, IBlock>();
    for (const block of this.bridge.blocks) {
      byName.set(block.name, block);
      if (block.cell_id) {
        byCell.set(block.cell_id, block);
      }
    }
    for (const cell of this.panel.content.widgets) {
      const line =
        cell.model.type === 'code' ? parseMagicLine(cell.model.sharedModel.getSource()) : null;
      this._renderBadge(
        cell,
        line,
        byCell.get(cell.model.id) ?? (line ? byName.get(line.name) : undefined)
      );
    }
  }

  dispose(): void {
    this.bridge.changed.disconnect(this.refresh, this);
    this.panel.content.modelChanged.disconnect(this._onModelChanged, this);
    this.panel.content.model?.cells.changed.disconnect(this._onCellsChanged, this);
  }

  private _onModelChanged(): void {
    this.panel.content.model?.cells.changed.connect(this._onCellsChanged, this);
    this._onCellsChanged();
  }

  /** Watch each cell model once, then render. */
  private _onCellsChanged(): void {
    const model = this.panel.content.model;
    if (model) {
      for (const cell of model.cells) {
        if (!this._watched.has(cell)) {
          this._watched.add(cell);
          cell.contentChanged.connect(this._onContentChanged, this);
          cell.mimeTypeChanged.connect(() => this._applyMime(cell), this);
          this._applyMime(cell);
        }
      }
    }
    // New cell widgets are rendered asynchronously (windowed notebook).
    for (const cell of this.panel.content.widgets) {
      void cell.ready.then(() => this.refresh());
    }
    this.refresh();
  }

  private _onContentChanged(cell: ICellModel): void {
    this._applyMime(cell);
    this.refresh();
  }

  /** YAML for YAML block cells, the notebook's language for every other code cell. */
  private _applyMime(cell: ICellModel): void {
    if (cell.type !== 'code') {
      return;
    }
    const line = parseMagicLine(cell.sharedModel.getSource());
    const wanted = line?.yaml ? YAML_MIME : this.panel.content.codeMimetype;
    if (line?.yaml || cell.mimeType === YAML_MIME) {
      if (cell.mimeType !== wanted) {
        cell.mimeType = wanted;
      }
    }
  }

  private _renderBadge(cell: Cell, line: IMagicLine | null, block: IBlock | undefined): void {
    let badge = cell.node.querySelector<HTMLElement>(
      `:scope > .jp-CellHeader > .${BADGE_CLASS}, :scope > .${BADGE_CLASS}`
    );
    if (line === null) {
      badge?.remove();
      cell.node.classList.remove('jp-di-block-cell');
      return;
    }
    if (badge === null) {
      badge = document.createElement('div');
      badge.className = BADGE_CLASS;
      // The cell header is an empty widget of the cell's own layout, so the badge stays on
      // top of the cell whatever the notebook re-renders.
      const header = cell.node.querySelector(':scope > .jp-CellHeader');
      (header ?? cell.node).prepend(badge);
    }
    cell.node.classList.add('jp-di-block-cell');
    const status = block?.status ?? 'idle';
    badge.dataset.blockName = line.name;
    badge.dataset.kind = line.kind;
    badge.dataset.status = status;
    badge.dataset.invalid = String(line.error !== null);
    badge.title = line.error ?? block?.message ?? '';
    const parts: [string, string][] = [
      ['jp-di-badge-kind', line.kind],
      ['jp-di-badge-name', line.name || '(unnamed)'],
      ['jp-di-badge-upstream', line.upstream.length ? `← ${line.upstream.join(', ')}` : ''],
      ['jp-di-badge-status', status],
      ['jp-di-badge-duration', formatDuration(block?.duration_s)],
      // the kernel would refuse this magic line: say why (the same grammar, magic.ts)
      ['jp-di-badge-error', line.error ?? '']
    ];
    badge.replaceChildren(
      ...parts
        .filter(([, text]) => text !== '')
        .map(([cls, text]) => {
          const span = document.createElement('span');
          span.className = cls;
          span.textContent = text;
          return span;
        })
    );
  }

  private _watched = new WeakSet<ICellModel>();
}
