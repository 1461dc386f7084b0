/**
 * Client of the Workbench server REST API (`<baseUrl>/workbench/api/`).
 *
 * Every request goes through `ServerConnection.makeRequest`, which adds the
 * token and XSRF headers. A failed request rejects with a
 * `ServerConnection.ResponseError` whose `message` is the server's JSON
 * `message` (jupyter_server's APIHandler error format).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One Dask worker of a cluster. */
export interface IWorker {
  name: string;
  address: string;
  cores: number;
  /** Memory limit in bytes, 0 when the worker has no limit. */
  memory: number;
  memory_used: number;
  /** CPU use in percent. */
  cpu: number;
  tasks: number;
  status: string;
}

/** A Dask cluster known to the server (started by a kernel or by the server). */
export interface ICluster {
  id: string;
  owner: 'kernel' | 'server';
  kind: string;
  kernel_id: string | null;
  notebook: string | null;
  scheduler: string;
  dashboard: string | null;
  workers: IWorker[];
  can_scale: boolean;
  can_stop: boolean;
  /** Code a notebook runs to connect to this cluster. */
  connect: string;
}

/** The status of a training job. */
export type JobStatus =
  'running' | 'stopping' | 'finished' | 'failed' | 'stopped';

/** One `Estimator.fit` call, as listed by `GET /jobs`. */
export interface IJob {
  id: string;
  name: string;
  kernel_id: string;
  notebook: string | null;
  status: JobStatus;
  failures_recovered: number;
  error: string | null;
  epoch: number;
  epochs: number;
  step: number;
  steps_per_epoch: number | null;
  progress: number;
  loss: number | null;
  metrics: Record<string, number>;
  samples_per_s: number | null;
  workers: number;
  started: number;
  ended: number | null;
  /** At most 64 loss values, evenly sampled over the fit. */
  sparkline: number[];
}

/** A change of the worker set during a fit. */
export interface IJobEvent {
  kind: 'workers_lost' | 'workers_joined' | string;
  step: number;
  workers: string[];
}

/** A job with its full series, as returned by `GET /jobs/<id>`. */
export interface IJobDetail extends IJob {
  /** Per-step series, aligned on `step`. */
  steps: {
    step: number[];
    loss: (number | null)[];
    samples_per_s?: (number | null)[];
    lr?: (number | null)[];
  };
  /** One entry per finished epoch: `epoch`, `loss`, metrics, `val_*`. */
  epochs_log: Record<string, number | null>[];
  events: IJobEvent[];
}

/**
 * Send a request to `workbench/api/<path>` and decode its JSON answer
 * (`undefined` for an empty answer such as 204).
 */
async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workbench/api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  if (!response.ok) {
    throw await ServerConnection.ResponseError.create(response);
  }
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A JSON request init for `method` with `body`. */
function json(method: string, body: unknown): RequestInit {
  return {
    method,
    body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' }
  };
}

/** The clusters the server knows about. */
export async function listClusters(): Promise<ICluster[]> {
  return (await request<{ clusters: ICluster[] }>('clusters')).clusters;
}

/** Start a new local cluster owned by the Jupyter server. */
export function createCluster(workers = 2): Promise<ICluster> {
  return request<ICluster>('clusters', json('POST', { workers }));
}

/** Scale a cluster to `workers` workers. */
export function scaleCluster(id: string, workers: number): Promise<ICluster> {
  return request<ICluster>(
    `clusters/${encodeURIComponent(id)}`,
    json('PATCH', { workers })
  );
}

/** Close a cluster. */
export async function stopCluster(id: string): Promise<void> {
  await request<void>(`clusters/${encodeURIComponent(id)}`, {
    method: 'DELETE'
  });
}

/** The training jobs, newest first. */
export async function listJobs(): Promise<IJob[]> {
  return (await request<{ jobs: IJob[] }>('jobs')).jobs;
}

/** One job with its full series. */
export function getJob(id: string): Promise<IJobDetail> {
  return request<IJobDetail>(`jobs/${encodeURIComponent(id)}`);
}

/** Ask a running job to stop at its next check. */
export function stopJob(id: string): Promise<IJob> {
  return request<IJob>(`jobs/${encodeURIComponent(id)}/stop`, json('POST', {}));
}

/** The text to show for a failed request. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
