/**
 * The extension's JupyterLab commands: run the current notebook's pipeline, run one block, show
 * the pipeline side panel.  The side panel's buttons, the command palette (category
 * "jupyter-di"), the Run and View menus and the keyboard shortcuts all go through them; menus
 * and shortcuts are declared in schema/plugin.json (`jupyter.lab.menus`, `jupyter.lab.shortcuts`),
 * so users can rebind them in Settings > Keyboard Shortcuts.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { parseMagicLine } from './magic';
import { addBlock, NewBlockKind } from './newblock';
import { PANEL_ID, PipelinePanel, pipelineIcon } from './panel';

export const CommandIDs = {
  runPipeline: 'jupyter-di:run-pipeline',
  runBlock: 'jupyter-di:run-block',
  showPanel: 'jupyter-di:show-pipeline-panel',
  newSource: 'jupyter-di:new-source-block',
  newDestination: 'jupyter-di:new-destination-block',
  newPython: 'jupyter-di:new-python-block'
} as const;

const CATEGORY = 'jupyter-di';

export function registerCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  panel: PipelinePanel,
  palette: ICommandPalette | null
): void {
  const { commands } = app;

  /** The block `run-block` runs: the one named in args (the panel's selection), else the active cell's. */
  const targetBlock = (args: { name?: unknown }): string | null => {
    if (typeof args.name === 'string' && args.name !== '') {
      return args.name;
    }
    const cell = tracker.activeCell;
    if (cell === null || tracker.currentWidget === null || cell.model.type !== 'code') {
      return null;
    }
    const fromKernel = panel.blocks().find(b => b.cell_id === cell.model.id);
    if (fromKernel !== undefined) {
      return fromKernel.name;
    }
    const line = parseMagicLine(cell.model.sharedModel.getSource());
    return line !== null && line.error === null ? line.name : null;
  };

  commands.addCommand(CommandIDs.runPipeline, {
    label: 'Run Pipeline',
    caption: "jupyter-di: run every block of the current notebook's pipeline (the kernel's graph)",
    icon: args => (args.isPalette ? undefined : pipelineIcon),
    isEnabled: () => panel.connected,
    execute: () => {
      panel.request({ type: 'run_pipeline' });
    }
  });

  commands.addCommand(CommandIDs.runBlock, {
    label: args =>
      typeof args.name === 'string' && args.name ? `Run Block ${args.name}` : 'Run This Block',
    caption: args => {
      const name = targetBlock(args);
      return name === null
        ? 'jupyter-di: run the block of the active cell (and the stale blocks it needs)'
        : `jupyter-di: run block ${name} (and the stale blocks it needs)`;
    },
    isEnabled: args => panel.connected && targetBlock(args) !== null,
    execute: args => {
      const name = targetBlock(args);
      if (name !== null) {
        panel.request({ type: 'run_block', name });
      }
    }
  });

  commands.addCommand(CommandIDs.showPanel, {
    label: 'Show Pipeline Panel',
    caption: "jupyter-di: the current notebook's block graph, coloured by status",
    icon: args => (args.isPalette ? undefined : pipelineIcon),
    execute: () => {
      app.shell.activateById(PANEL_ID);
    }
  });

  const newBlock = (id: string, kind: NewBlockKind, label: string, short: string, what: string) =>
    commands.addCommand(id, {
      label: args => (args.toolbar ? short : label),
      caption: `jupyter-di: ${what}`,
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const notebook = tracker.currentWidget;
        if (notebook === null) {
          return;
        }
        try {
          if (await addBlock(notebook, kind)) {
            app.shell.activateById(notebook.id);
          }
        } catch (error) {
          Notification.error(
            `jupyter-di: ${error instanceof Error ? error.message : String(error)}`,
            {
              autoClose: 8000
            }
          );
        }
      }
    });
  newBlock(
    CommandIDs.newSource,
    'source',
    'New Source Block',
    '+ Source',
    'add a source block: pick a connector, get its config template, fill it in the panel'
  );
  newBlock(
    CommandIDs.newDestination,
    'destination',
    'New Destination Block',
    '+ Destination',
    'add a destination block reading from the last block: pick a connector, fill it in the panel'
  );
  newBlock(CommandIDs.newPython, 'python', 'New Python Block', '+ Python', 'add a Python block');

  // Menus, the palette and the panel's buttons ask isEnabled again when these change.
  const changed = () => {
    commands.notifyCommandChanged(CommandIDs.runPipeline);
    commands.notifyCommandChanged(CommandIDs.runBlock);
  };
  panel.stateChanged.connect(changed);
  tracker.activeCellChanged.connect(changed);

  // The cell context menu (added here: JupyterLab merges `jupyter.lab.context-menu` of a plug-in's
  // schema only into fresh user settings, so an upgrade would not show them).
  app.contextMenu.addItem({ type: 'separator', selector: '.jp-Notebook .jp-Cell', rank: 60 });
  for (const command of [CommandIDs.newSource, CommandIDs.newDestination, CommandIDs.newPython]) {
    app.contextMenu.addItem({ command, selector: '.jp-Notebook .jp-Cell', rank: 60 });
  }

  if (palette !== null) {
    for (const command of Object.values(CommandIDs)) {
      palette.addItem({ command, category: CATEGORY, args: { isPalette: true } });
    }
  }
}
