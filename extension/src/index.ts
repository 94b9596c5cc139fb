/**
 * dockyard-panel: lets the environment panel (an anywidget in a notebook's output) switch *the notebook
 * that holds it* to another kernel.
 *
 * The panel's kernel usually runs in a container and its widget code cannot reach JupyterLab's objects, so
 * the widget dispatches a bubbling DOM event from its own element; we find the NotebookPanel whose node
 * contains that element and call sessionContext.changeKernel() (the `notebook:change-kernel` command
 * would only open a dialog). Works in JupyterLab 4 and Notebook 7 (both provide INotebookTracker).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

const VERSION = '0.1.0';
const SWITCH_EVENT = 'dockyard:switch';
const WHOAMI_EVENT = 'dockyard:whoami';
const OPEN_COMMAND = 'dockyard:open-panel';
const PANEL_CODE = 'import dockyard; dockyard.panel()';

/** What the widget puts in a switch event's detail; we call exactly one of resolve/reject. */
interface ISwitchDetail {
  name: string;
  factsExpression?: string;
  resolve: (result: { kernel: string; facts: Promise<unknown> }) => void;
  reject: (message: string) => void;
}

/** What the widget asks with a whoami event; we fill it in synchronously. */
interface IWhoamiDetail {
  labextension?: string;
  kernel?: string | null;
  path?: string;
}

function holder(tracker: INotebookTracker, target: EventTarget | null): NotebookPanel | null {
  if (!(target instanceof Node)) {
    return null;
  }
  return tracker.find(panel => panel.node.contains(target)) ?? null;
}

async function switchKernel(panel: NotebookPanel, detail: ISwitchDetail): Promise<void> {
  const context = panel.sessionContext;
  await context.ready;
  await context.changeKernel({ name: detail.name });
  const kernel = context.session?.kernel;
  if (!kernel) {
    throw new Error(`the kernel '${detail.name}' did not start (see the server's log)`);
  }
  await kernel.info; // resolves once the new kernel answered kernel_info: it is up
  // The switch is done: answer now, and let the new kernel's facts follow (the user's first cell need not
  // wait for them). An expression evaluated silently: nothing shows and the history stays as it was.
  const facts = detail.factsExpression
    ? kernel
        .requestExecute({ code: '', silent: true, store_history: false, user_expressions: { facts: detail.factsExpression } })
        .done.then(reply => {
          const content = reply.content as { user_expressions?: Record<string, any> };
          const result = content.user_expressions?.facts;
          return result?.status === 'ok' ? (result.data?.['application/json'] ?? null) : null;
        })
        .catch(() => null)
    : Promise.resolve(null);
  detail.resolve({ kernel: kernel.name, facts });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'dockyard-panel:plugin',
  description: 'Switches the notebook holding the dockyard environment panel to another container kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    document.addEventListener(SWITCH_EVENT, (event: Event) => {
      const detail = (event as CustomEvent<ISwitchDetail>).detail;
      const panel = holder(tracker, event.target);
      if (!panel || !detail || typeof detail.name !== 'string') {
        return; // not ours to answer: the widget explains how to switch by hand
      }
      event.preventDefault(); // tells the widget that a switch is under way
      switchKernel(panel, detail).catch((reason: unknown) => {
        const message = reason instanceof Error ? reason.message : String(reason);
        detail.reject(`Switching to '${detail.name}' failed: ${message}`);
      });
    });
    document.addEventListener(WHOAMI_EVENT, (event: Event) => {
      const detail = (event as CustomEvent<IWhoamiDetail>).detail;
      const panel = holder(tracker, event.target);
      if (!panel || !detail) {
        return;
      }
      event.preventDefault();
      detail.labextension = VERSION;
      detail.kernel = panel.sessionContext.session?.kernel?.name ?? null;
      detail.path = panel.context.path;
    });

    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Open the dockyard environment panel',
      caption: `Adds and runs a cell with "${PANEL_CODE}" in the current notebook`,
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const panel = tracker.currentWidget;
        if (!panel) {
          return;
        }
        await panel.sessionContext.ready;
        NotebookActions.insertBelow(panel.content);
        const cell = panel.content.activeCell;
        if (cell) {
          cell.model.sharedModel.setSource(PANEL_CODE);
          await NotebookActions.run(panel.content, panel.sessionContext);
        }
      }
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'Notebook Operations' });
    document.documentElement.dataset.dockyardLabextension = VERSION;
  }
};

export default plugin;
