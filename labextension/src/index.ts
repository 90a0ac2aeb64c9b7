/**
 * jupyter-di JupyterLab extension: wires a NotebookBridge (comm) and CellBadges to every
 * notebook, the pipeline side panel to the current notebook, and the commands (commands.ts;
 * their menus and shortcuts are in schema/plugin.json).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { CellBadges } from './badges';
import { NotebookBridge } from './bridge';
import { CommandIDs, registerCommands } from './commands';
import { PipelinePanel } from './panel';
import { shareTableModule } from './tablemodule';

/** One bridge per document context: views of one notebook share the kernel and the model. */
const bridges = new WeakMap<NotebookPanel['context'], NotebookBridge>();

function bridgeFor(panel: NotebookPanel): NotebookBridge {
  const context = panel.context;
  let bridge = bridges.get(context);
  if (bridge === undefined) {
    const created = new NotebookBridge(context.sessionContext, () => context.model);
    bridges.set(context, created);
    context.disposed.connect(() => created.dispose());
    bridge = created;
  }
  return bridge;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-di:plugin',
  description:
    'jupyter-di: block badges, YAML block cells, a pipeline side panel and run commands.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    shareTableModule(); // before any panel's table renders (table.py's SHARED_ESM)
    const sidePanel = new PipelinePanel(app.commands, CommandIDs);
    app.shell.add(sidePanel, 'right', { rank: 600 });
    registerCommands(app, tracker, sidePanel, palette);

    tracker.widgetAdded.connect((_, panel) => {
      const bridge = bridgeFor(panel);
      const badges = new CellBadges(panel, bridge);
      panel.disposed.connect(() => badges.dispose());
    });

    const follow = () => {
      const panel = tracker.currentWidget;
      sidePanel.setNotebook(panel, panel ? bridgeFor(panel) : null);
    };
    tracker.currentChanged.connect(follow);
    follow();
  }
};

export default plugin;
