/**
 * The Training jobs section of the sidebar, and the job summary shared by
 * a job row and the job view's header.
 */
import * as React from 'react';

import type { IJob } from './api';
import { Sparkline } from './charts';
import {
  basename,
  formatLoss,
  formatMetrics,
  jobStatusText,
  progressText
} from './format';
import type { WorkbenchModel } from './model';

/** Shown when the server knows no job. */
export const NO_JOB_TEXT =
  'No training job yet: call Estimator.fit in a notebook.';

/**
 * Status, progress bar, loss, last-epoch metrics and (while running) a
 * Stop button; `onStop` gets the click without letting it reach the row.
 */
export function JobSummary(props: {
  job: IJob;
  onStop: () => void;
  disabled?: boolean;
}): JSX.Element {
  const { job, onStop, disabled } = props;
  const metrics = formatMetrics(job.metrics ?? {});
  return (
    <div className="wb-job-summary">
      <div className="wb-job-status-line">
        <span className="wb-job-status">{jobStatusText(job)}</span>
        {job.status === 'running' && (
          <button
            className="wb-job-stop jp-Button jp-mod-styled jp-mod-warn"
            title="Stop this training job at its next check"
            disabled={disabled}
            onClick={event => {
              event.stopPropagation();
              onStop();
            }}
          >
            Stop
          </button>
        )}
      </div>
      <progress
        className="wb-job-progress"
        value={Math.min(1, Math.max(0, job.progress || 0))}
        max={1}
      />
      <div className="wb-job-progress-text">{progressText(job)}</div>
      <div className="wb-job-values">
        <span className="wb-job-loss">loss {formatLoss(job.loss)}</span>
        {metrics && <span className="wb-job-metrics">{metrics}</span>}
      </div>
    </div>
  );
}

/** One job row; clicking it (not its button) opens the job view. */
function JobRow(props: {
  job: IJob;
  model: WorkbenchModel;
  onOpen: (id: string) => void;
}): JSX.Element {
  const { job, model, onOpen } = props;
  return (
    <div
      className="wb-job"
      data-job-id={job.id}
      data-status={job.status}
      role="button"
      tabIndex={0}
      title="Open the job view"
      onClick={() => onOpen(job.id)}
      onKeyDown={event => {
        if (event.key === 'Enter' && event.target === event.currentTarget) {
          onOpen(job.id);
        }
      }}
    >
      <div className="wb-job-header">
        <span className="wb-job-name">{job.name}</span>
        <span className="wb-job-notebook" title={job.notebook ?? undefined}>
          {basename(job.notebook)}
        </span>
        <Sparkline values={job.sparkline ?? []} />
      </div>
      <JobSummary
        job={job}
        disabled={model.busy}
        onStop={() => void model.stopJob(job.id)}
      />
    </div>
  );
}

/** The Training jobs section. */
export function JobsPanel(props: {
  model: WorkbenchModel;
  onOpen: (id: string) => void;
}): JSX.Element {
  const { model, onOpen } = props;
  return (
    <section className="wb-jobs">
      <header className="wb-section-header">
        <h3>Training jobs</h3>
      </header>
      {model.jobs.length === 0
        ? model.loaded && <p className="wb-empty">{NO_JOB_TEXT}</p>
        : model.jobs.map(job => (
            <JobRow key={job.id} job={job} model={model} onOpen={onOpen} />
          ))}
    </section>
  );
}
