/**
 * jupyter-di JupyterLab extension: wires a NotebookBridge (comm) and CellBadges to every
 * notebook, and the pipeline side panel to the current notebook.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { CellBadges } from './badges';
import { NotebookBridge } from './bridge';
import { PipelinePanel } from './panel';

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
  description: 'jupyter-di: block badges, YAML block cells and a pipeline side panel.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const sidePanel = new PipelinePanel();
    app.shell.add(sidePanel, 'right', { rank: 600 });

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
