/**
 * The sidebar's state: clusters and jobs, refreshed by a `Poll`, and the
 * actions the panels trigger (each followed by an immediate refresh).
 */
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import * as api from './api';
import { pollInterval } from './format';

/** Longest time a scale request keeps the poll fast while the worker count catches up. */
const SCALE_PENDING_MS = 30000;

/** Longest backoff between failed polls. */
const MAX_BACKOFF_MS = 30000;

/** A scale request whose worker count is not reached yet. */
interface IPendingScale {
  workers: number;
  since: number;
}

/** Clusters and jobs of the Workbench server, kept fresh by polling. */
export class WorkbenchModel implements IDisposable {
  constructor() {
    this._poll = new Poll({
      name: 'analytics-workbench:model',
      factory: () => this._fetch(),
      frequency: {
        interval: pollInterval([], false),
        backoff: true,
        max: MAX_BACKOFF_MS
      },
      standby: 'when-hidden'
    });
  }

  /** Emitted whenever clusters, jobs, errors or pending actions change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The clusters, as last fetched. */
  get clusters(): api.ICluster[] {
    return this._clusters;
  }

  /** The jobs, newest first, as last fetched. */
  get jobs(): api.IJob[] {
    return this._jobs;
  }

  /** Whether the first fetch has answered (successfully or not). */
  get loaded(): boolean {
    return this._loaded;
  }

  /** The message of the last failed poll, or null. */
  get pollError(): string | null {
    return this._pollError;
  }

  /** The message of the last failed action, or null. */
  get actionError(): string | null {
    return this._actionError;
  }

  /** Whether an action is in flight (its buttons are disabled). */
  get busy(): boolean {
    return this._busy > 0;
  }

  /** The worker count a scale request asked for, while it is not reached. */
  pendingWorkers(clusterId: string): number | null {
    return this._pending.get(clusterId)?.workers ?? null;
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
  }

  /** Fetch now instead of at the next tick. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  /** Start a new local cluster owned by the server. */
  newCluster(workers = 2): Promise<void> {
    return this._act(() => api.createCluster(workers));
  }

  /** Ask for `workers` workers (at least 1); the poll stays fast until they are there. */
  scale(clusterId: string, workers: number): Promise<void> {
    const target = Math.max(1, workers);
    return this._act(async () => {
      await api.scaleCluster(clusterId, target);
      this._pending.set(clusterId, { workers: target, since: Date.now() });
    });
  }

  /** Close a cluster. */
  stopCluster(clusterId: string): Promise<void> {
    return this._act(() => api.stopCluster(clusterId));
  }

  /** Ask a running job to stop. */
  stopJob(jobId: string): Promise<void> {
    return this._act(() => api.stopJob(jobId));
  }

  /** Clear the last action's error message. */
  dismissError(): void {
    this._actionError = null;
    this._changed.emit();
  }

  /** Run an action, record its error message, then refresh. */
  private async _act(action: () => Promise<unknown>): Promise<void> {
    this._busy++;
    this._actionError = null;
    this._changed.emit();
    try {
      await action();
    } catch (error) {
      this._actionError = api.errorMessage(error);
    } finally {
      this._busy--;
      this._updateFrequency();
      this._changed.emit();
    }
    await this.refresh();
  }

  /** One poll tick: fetch clusters and jobs together. */
  private async _fetch(): Promise<void> {
    try {
      const [clusters, jobs] = await Promise.all([
        api.listClusters(),
        api.listJobs()
      ]);
      this._clusters = clusters;
      this._jobs = jobs;
      this._pollError = null;
      this._settlePending();
    } catch (error) {
      this._pollError = api.errorMessage(error);
      throw error;
    } finally {
      this._loaded = true;
      this._updateFrequency();
      this._changed.emit();
    }
  }

  /** Forget scale requests that are reached, whose cluster is gone, or that are too old. */
  private _settlePending(): void {
    const now = Date.now();
    for (const [id, pending] of this._pending) {
      const cluster = this._clusters.find(c => c.id === id);
      if (
        !cluster ||
        cluster.workers.length === pending.workers ||
        now - pending.since > SCALE_PENDING_MS
      ) {
        this._pending.delete(id);
      }
    }
  }

  private _updateFrequency(): void {
    this._poll.frequency = {
      ...this._poll.frequency,
      interval: pollInterval(this._jobs, this._pending.size > 0)
    };
  }

  private _poll: Poll;
  private _changed = new Signal<this, void>(this);
  private _clusters: api.ICluster[] = [];
  private _jobs: api.IJob[] = [];
  private _loaded = false;
  private _pollError: string | null = null;
  private _actionError: string | null = null;
  private _busy = 0;
  private _pending = new Map<string, IPendingScale>();
}
