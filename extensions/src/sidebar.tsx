/**
 * The Workbench sidebar: error banner, Clusters and Training jobs sections.
 */
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { ClustersPanel } from './clusters';
import { JobsPanel } from './jobs';
import type { WorkbenchModel } from './model';

/** The error messages of the last poll and the last action. */
function Errors(props: { model: WorkbenchModel }): JSX.Element | null {
  const { model } = props;
  if (!model.pollError && !model.actionError) {
    return null;
  }
  return (
    <div className="wb-errors">
      {model.pollError && (
        <div className="wb-error wb-poll-error">
          Refresh failed: {model.pollError}
        </div>
      )}
      {model.actionError && (
        <div className="wb-error wb-action-error">
          <span>{model.actionError}</span>
          <button
            className="wb-error-dismiss jp-Button jp-mod-minimal"
            title="Dismiss"
            onClick={() => model.dismissError()}
          >
            ×
          </button>
        </div>
      )}
    </div>
  );
}

/** The left sidebar widget, re-rendered whenever the model changes. */
export class WorkbenchSidebar extends ReactWidget {
  constructor(
    private readonly _model: WorkbenchModel,
    private readonly _openJob: (id: string) => void
  ) {
    super();
    this.addClass('wb-sidebar');
    _model.changed.connect(() => this.update(), this);
  }

  protected render(): JSX.Element {
    return (
      <>
        <Errors model={this._model} />
        <ClustersPanel model={this._model} />
        <JobsPanel model={this._model} onOpen={this._openJob} />
      </>
    );
  }
}
