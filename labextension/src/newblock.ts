/**
 * "New source block", "New destination block", "New Python block": pick a connector (with
 * search), get a cell with its config template and a free name, run it so its panel opens.
 *
 * The templates come from the kernel (jupyter_di/integration/cell_template.py: the connector
 * registry, plug-ins included) through a silent execute request's `user_expressions`, so nothing
 * runs in the user's namespace and nothing reaches a cell's output.  A notebook without
 * `%load_ext jupyter_di` gets that cell first.
 *
 * Stable hooks for tests: #jupyter-di-connector-search, #jupyter-di-connector-list.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';
import { parseMagicLine } from './magic';
import { blockSource, freeName, NewBlockKind } from './blocktext';

export type { NewBlockKind } from './blocktext';

/** One connector and the templates of the roles it has (`{name}`, `{upstream}` to fill in). */
export interface IConnectorTemplate {
  name: string;
  title: string;
  source?: string;
  destination?: string;
}

const LOAD = '%load_ext jupyter_di';
const EXPRESSION =
  '__import__("jupyter_di.integration.cell_template", fromlist=["templates_json"]).templates_json()';

/** Every connector's templates, asked of the notebook's kernel. */
export async function kernelTemplates(panel: NotebookPanel): Promise<IConnectorTemplate[]> {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error('the notebook has no kernel: start one first');
  }
  const reply = await kernel.requestExecute({
    code: '',
    silent: true,
    store_history: false,
    user_expressions: { templates: EXPRESSION }
  }).done;
  const content = reply.content as {
    status: string;
    user_expressions?: {
      [key: string]: { status: string; data?: { [mime: string]: unknown }; evalue?: string };
    };
  };
  const answer = content.user_expressions?.templates;
  if (content.status !== 'ok' || answer === undefined || answer.status !== 'ok') {
    throw new Error(
      `the kernel cannot list jupyter-di connectors (${answer?.evalue ?? content.status}); ` +
        'is jupyter-di installed in its environment?'
    );
  }
  return JSON.parse(String(answer.data?.['text/plain'] ?? '[]')) as IConnectorTemplate[];
}

/** The notebook's blocks in cell order: (name, kind). */
function notebookBlocks(panel: NotebookPanel): { name: string; kind: string }[] {
  const out: { name: string; kind: string }[] = [];
  for (const cell of panel.model?.cells ?? []) {
    const line = cell.type === 'code' ? parseMagicLine(cell.sharedModel.getSource()) : null;
    if (line !== null && line.name) {
      out.push({ name: line.name, kind: line.kind });
    }
  }
  return out;
}

/** A list of connectors filtered as the user types; the dialog's value is the selected name. */
class ConnectorPicker extends Widget implements Dialog.IBodyWidget<string> {
  constructor(entries: IConnectorTemplate[]) {
    super();
    this.addClass('jp-di-picker');
    this._search = document.createElement('input');
    this._search.id = 'jupyter-di-connector-search';
    this._search.className = 'jp-mod-styled';
    this._search.placeholder = 'search connectors';
    this._list = document.createElement('select');
    this._list.id = 'jupyter-di-connector-list';
    this._list.size = Math.min(12, Math.max(4, entries.length));
    for (const entry of entries) {
      const option = document.createElement('option');
      option.value = entry.name;
      option.textContent = `${entry.title} (${entry.name})`;
      this._list.append(option);
    }
    this._list.selectedIndex = entries.length ? 0 : -1;
    this._search.addEventListener('input', () => this._filter());
    this.node.append(this._search, this._list);
  }

  getValue(): string {
    return this._list.value;
  }

  private _filter(): void {
    const words = this._search.value
      .toLowerCase()
      .split(/\s+/)
      .filter(w => w);
    let first: HTMLOptionElement | null = null;
    for (const option of Array.from(this._list.options)) {
      const text = (option.textContent ?? '').toLowerCase();
      const shown = words.every(w => text.includes(w));
      option.hidden = !shown;
      if (shown && first === null) {
        first = option;
      }
    }
    if (first !== null && (this._list.selectedOptions[0]?.hidden ?? true)) {
      first.selected = true;
    }
  }

  private _search: HTMLInputElement;
  private _list: HTMLSelectElement;
}

/** Ask for a connector of `kind` (null: cancelled). */
async function pickConnector(
  kind: 'source' | 'destination',
  entries: IConnectorTemplate[]
): Promise<IConnectorTemplate | null> {
  const usable = entries.filter(e => e[kind] !== undefined);
  const result = await showDialog({
    title: `New ${kind} block`,
    body: new ConnectorPicker(usable),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Add block' })],
    focusNodeSelector: '#jupyter-di-connector-search'
  });
  if (!result.button.accept || !result.value) {
    return null;
  }
  return usable.find(e => e.name === result.value) ?? null;
}

/** Add a block of `kind` below the active cell, run it (its panel opens); false if cancelled. */
export async function addBlock(panel: NotebookPanel, kind: NewBlockKind): Promise<boolean> {
  const blocks = notebookBlocks(panel);
  const taken = blocks.map(b => b.name);
  // a destination or Python block reads from the notebook's last source or Python block
  const feeds = blocks.filter(b => b.kind !== 'destination');
  const upstream = feeds.length ? feeds[feeds.length - 1].name : null;
  let source: string;
  if (kind === 'python') {
    source = blockSource(
      kind,
      freeName(upstream !== null ? 'transform' : 'load', taken),
      upstream,
      null
    );
  } else {
    const picked = await pickConnector(kind, await kernelTemplates(panel));
    if (picked === null) {
      return false;
    }
    source = blockSource(kind, freeName(picked.name, taken), upstream, picked[kind] ?? null);
  }
  const notebook = panel.content;
  const hasLoad = (panel.model?.cells ? Array.from(panel.model.cells) : []).some(
    c => c.type === 'code' && c.sharedModel.getSource().includes(LOAD)
  );
  if (!hasLoad) {
    notebook.activeCellIndex = 0;
    NotebookActions.insertAbove(notebook);
    notebook.activeCell?.model.sharedModel.setSource(LOAD);
    await NotebookActions.run(notebook, panel.sessionContext);
    notebook.activeCellIndex = notebook.widgets.length - 1;
  }
  NotebookActions.insertBelow(notebook);
  notebook.activeCell?.model.sharedModel.setSource(source);
  await NotebookActions.run(notebook, panel.sessionContext);
  return true;
}
