/**
 * The job view: a main-area panel with a job's status and its charts,
 * redrawn every second while the job runs.
 */
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon, ReactWidget } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import * as api from './api';
import { IMarker, ISeries, LineChart } from './charts';
import {
  basename,
  epochMetricGroups,
  eventLabel,
  FAST_POLL_MS,
  isActive
} from './format';
import { JobSummary } from './jobs';
import type { WorkbenchModel } from './model';

/** Longest backoff between failed fetches. */
const MAX_BACKOFF_MS = 30000;

/** The id of the job view of `jobId`. */
export function jobViewId(jobId: string): string {
  return `workbench-job-${jobId}`;
}

/** The charts of a job: per-step loss, per-epoch metrics, samples/s. */
function JobCharts(props: { job: api.IJobDetail }): JSX.Element {
  const { job } = props;
  const steps = job.steps ?? { step: [], loss: [] };
  const log = job.epochs_log ?? [];
  const markers: IMarker[] = (job.events ?? []).map(e => ({
    x: e.step,
    label: eventLabel(e)
  }));
  const epochs = log.map(entry => entry.epoch ?? null);
  const epochCharts = epochMetricGroups(log).map(keys => ({
    title: `Epoch ${keys[0]}`,
    series: keys.map((key): ISeries => ({
      name: key,
      x: epochs,
      y: log.map(entry => entry[key] ?? null)
    }))
  }));
  return (
    <div className="wb-charts">
      <LineChart
        title="Loss per step"
        xLabel="step"
        series={[{ name: 'loss', x: steps.step, y: steps.loss }]}
        markers={markers}
      />
      {epochCharts.map(chart => (
        <LineChart
          key={chart.title}
          title={chart.title}
          xLabel="epoch"
          series={chart.series}
        />
      ))}
      <LineChart
        title="Samples/s per step"
        xLabel="step"
        series={[
          {
            name: 'samples/s',
            x: steps.step,
            y: steps.samples_per_s ?? []
          }
        ]}
        markers={markers}
      />
    </div>
  );
}

/**
 * A closable main-area panel for one job (id "workbench-job-<id>"). It
 * polls `GET /jobs/<id>` while the job is active, draws the ended job once
 * more, then stops; closing it disposes it and its poll.
 */
export class JobView extends ReactWidget {
  constructor(options: {
    jobId: string;
    name?: string;
    model: WorkbenchModel;
    icon: LabIcon;
  }) {
    super();
    this._jobId = options.jobId;
    this._model = options.model;
    this.id = jobViewId(options.jobId);
    this.addClass('wb-job-view');
    this.title.icon = options.icon;
    this.title.closable = true;
    this._setName(options.name ?? options.jobId);
    this._poll = new Poll({
      name: `analytics-workbench:job-${options.jobId}`,
      factory: () => this._fetch(),
      frequency: { interval: FAST_POLL_MS, backoff: true, max: MAX_BACKOFF_MS },
      standby: 'when-hidden'
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  protected onCloseRequest(msg: Message): void {
    super.onCloseRequest(msg);
    this.dispose();
  }

  protected render(): JSX.Element {
    const job = this._job;
    return (
      <div className="wb-job-view-body">
        <header className="wb-job-view-header">
          <h2>
            <span className="wb-job-name">{job?.name ?? this._jobId}</span>
            {job?.notebook && (
              <span className="wb-job-notebook" title={job.notebook}>
                {basename(job.notebook)}
              </span>
            )}
          </h2>
          {job && (
            <JobSummary
              job={job}
              disabled={this._stopping}
              onStop={() => void this._stop()}
            />
          )}
          {job && (
            <div className="wb-job-info">
              {job.workers} worker{job.workers === 1 ? '' : 's'}
              {job.samples_per_s !== null &&
                ` · ${Math.round(job.samples_per_s)} samples/s`}
            </div>
          )}
          {this._error && <div className="wb-error">{this._error}</div>}
        </header>
        {job ? <JobCharts job={job} /> : !this._error && <p>Loading…</p>}
      </div>
    );
  }

  /** One poll tick; the last one once the job has ended or is gone. */
  private async _fetch(): Promise<void> {
    let done: boolean;
    try {
      const job = await api.getJob(this._jobId);
      if (this.isDisposed) {
        return;
      }
      this._job = job;
      this._error = null;
      this._setName(job.name);
      done = !isActive(job);
    } catch (error) {
      if (this.isDisposed) {
        return;
      }
      this._error = api.errorMessage(error);
      const gone =
        error instanceof ServerConnection.ResponseError &&
        error.response.status === 404;
      if (!gone) {
        this.update();
        throw error;
      }
      done = true;
    }
    this.update();
    if (done) {
      this._poll.dispose();
    }
  }

  /** Ask the job to stop, then refresh this view and the sidebar. */
  private async _stop(): Promise<void> {
    this._stopping = true;
    this.update();
    try {
      await api.stopJob(this._jobId);
      this._error = null;
    } catch (error) {
      this._error = api.errorMessage(error);
    }
    this._stopping = false;
    if (this.isDisposed) {
      return;
    }
    void this._model.refresh();
    if (this._poll.isDisposed) {
      this.update();
    } else {
      void this._poll.refresh();
    }
  }

  private _setName(name: string): void {
    this.title.label = `Job: ${name}`;
    this.title.caption = `Workbench training job ${name} (${this._jobId})`;
  }

  private _jobId: string;
  private _model: WorkbenchModel;
  private _poll: Poll;
  private _job: api.IJobDetail | null = null;
  private _error: string | null = null;
  private _stopping = false;
}
