/**
 * The Workbench JupyterLab extension: a left sidebar listing the Dask
 * clusters and training jobs of the server, and a main-area view per job.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { JobView } from './jobview';
import { WorkbenchModel } from './model';
import { WorkbenchSidebar } from './sidebar';

/** Command ids. */
export namespace CommandIDs {
  export const openJob = 'workbench:open-job';
  export const newLocalCluster = 'workbench:new-local-cluster';
  export const refresh = 'workbench:refresh';
}

/** The sidebar and job view icon: three linked nodes over a rising curve. */
export const workbenchIcon = new LabIcon({
  name: 'analytics-workbench:icon',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="5" cy="6" r="2.5"/><circle cx="19" cy="6" r="2.5"/><circle cx="12" cy="3.5" r="2.5"/>
    <path d="M6.5 6.6l4.3-2 .6 1.2-4.3 2zM17.5 6.6l-4.3-2-.6 1.2 4.3 2z"/>
    <path d="M2 21h20v1.5H2zM3 19.5l5-6 4 3 6-8 2.2 1.6-7.6 10.1-4-3-3.6 4.3z"/>
  </g>
</svg>`
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'analytics-workbench:plugin',
  description: 'Workbench sidebar: Dask clusters and live training jobs.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const model = new WorkbenchModel();
    const views = new Map<string, JobView>();

    app.commands.addCommand(CommandIDs.openJob, {
      label: args =>
        args.id ? `Open Workbench Job ${args.id}` : 'Open Workbench Job',
      execute: args => {
        const id = args.id as string | undefined;
        if (!id) {
          throw new Error(`${CommandIDs.openJob} needs an "id" argument`);
        }
        let view = views.get(id);
        if (!view) {
          const name = model.jobs.find(job => job.id === id)?.name;
          view = new JobView({ jobId: id, name, model, icon: workbenchIcon });
          views.set(id, view);
          view.disposed.connect(() => views.delete(id));
          app.shell.add(view, 'main');
        }
        app.shell.activateById(view.id);
      }
    });
    app.commands.addCommand(CommandIDs.newLocalCluster, {
      label: 'New Local Workbench Cluster',
      execute: () => model.newCluster()
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Workbench',
      execute: () => model.refresh()
    });
    if (palette) {
      for (const command of [CommandIDs.newLocalCluster, CommandIDs.refresh]) {
        palette.addItem({ command, category: 'Workbench' });
      }
    }

    const sidebar = new WorkbenchSidebar(model, id => {
      void app.commands.execute(CommandIDs.openJob, { id });
    });
    sidebar.id = 'workbench-sidebar';
    sidebar.title.icon = workbenchIcon;
    sidebar.title.caption = 'Workbench';
    app.shell.add(sidebar, 'left', { rank: 300 });
    if (restorer) {
      restorer.add(sidebar, 'workbench-sidebar');
    }
  }
};

export default plugin;
