/**
 * Pure formatting and geometry helpers used by the panels and charts.
 */
import type { ICluster, IJob, IJobEvent, IWorker } from './api';

/** Poll interval while something changes quickly (a running job, a pending scale). */
export const FAST_POLL_MS = 1000;

/** Poll interval otherwise. */
export const SLOW_POLL_MS = 5000;

const BYTE_UNITS: [string, number][] = [
  ['PiB', 2 ** 50],
  ['TiB', 2 ** 40],
  ['GiB', 2 ** 30],
  ['MiB', 2 ** 20],
  ['kiB', 2 ** 10]
];

/**
 * Bytes the way Dask writes them (`dask.utils.format_bytes`):
 * "4.00 GiB", "1.50 MiB", "512 B".
 */
export function formatBytes(n: number): string {
  for (const [unit, size] of BYTE_UNITS) {
    if (n >= size * 0.9) {
      return `${(n / size).toFixed(2)} ${unit}`;
    }
  }
  return `${n} B`;
}

/** A number with 4 significant digits ("0.4312"); "-" for null, NaN and infinities. */
export function formatLoss(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) {
    return '-';
  }
  return x.toPrecision(4);
}

/** Last-epoch metrics as "accuracy 0.9100 · val_loss 0.5000". */
export function formatMetrics(metrics: Record<string, number | null>): string {
  return Object.entries(metrics)
    .map(([key, value]) => `${key} ${formatLoss(value)}`)
    .join(' · ');
}

/** "1 failure", "2 failures". */
function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The last component of a path ("nb.ipynb" for "dir/nb.ipynb"); "" for null. */
export function basename(path: string | null | undefined): string {
  if (!path) {
    return '';
  }
  const parts = path.split('/');
  return parts[parts.length - 1];
}

/** Whether a job is still training (running, or stopping at its next check). */
export function isActive(job: Pick<IJob, 'status'>): boolean {
  return job.status === 'running' || job.status === 'stopping';
}

/**
 * A job's status line: "running", "running · recovered from 1 failure",
 * "finished", "stopped", "failed: <error>".
 */
export function jobStatusText(
  job: Pick<IJob, 'status' | 'error' | 'failures_recovered'>
): string {
  if (job.status === 'failed') {
    return job.error ? `failed: ${job.error}` : 'failed';
  }
  if (job.failures_recovered > 0) {
    return `${job.status} · recovered from ${plural(job.failures_recovered, 'failure')}`;
  }
  return job.status;
}

/** A job's progress line: "epoch 2/5 · step 120 · 40%". */
export function progressText(
  job: Pick<IJob, 'epoch' | 'epochs' | 'step' | 'progress'>
): string {
  const percent = Math.round(Math.min(1, Math.max(0, job.progress || 0)) * 100);
  return `epoch ${job.epoch}/${job.epochs} · step ${job.step} · ${percent}%`;
}

/** "2 workers · 2 cores · 8.00 GiB" (memory limits summed; "no memory limit" if a worker has none). */
export function clusterSummary(cluster: Pick<ICluster, 'workers'>): string {
  const workers = cluster.workers;
  const cores = workers.reduce((sum, w) => sum + w.cores, 0);
  const memory = workers.every(w => w.memory > 0)
    ? formatBytes(workers.reduce((sum, w) => sum + w.memory, 0))
    : 'no memory limit';
  return `${plural(workers.length, 'worker')} · ${plural(cores, 'core')} · ${memory}`;
}

/** A worker's memory used and limit: ["1.20 GiB", "4.00 GiB"], ["12.00 MiB", "no limit"]. */
export function workerMemory(
  worker: Pick<IWorker, 'memory' | 'memory_used'>
): [string, string] {
  const limit = worker.memory > 0 ? formatBytes(worker.memory) : 'no limit';
  return [formatBytes(worker.memory_used), limit];
}

/** A worker's memory as "used / limit" ("1.20 GiB / 4.00 GiB", "12.00 MiB / no limit"). */
export function workerMemoryText(
  worker: Pick<IWorker, 'memory' | 'memory_used'>
): string {
  return workerMemory(worker).join(' / ');
}

/** A CPU percentage as "12%". */
export function formatCpu(cpu: number): string {
  return `${Math.round(cpu)}%`;
}

/** epochs_log keys that are bookkeeping rather than metrics. */
const NON_METRIC_KEYS = new Set([
  'epoch',
  'time',
  'samples_per_s',
  'workers',
  'lr'
]);

/**
 * The metrics of an epochs log grouped for charting, "loss" first, each
 * metric with its "val_" twin: [["loss", "val_loss"], ["accuracy", "val_accuracy"]].
 * Keys whose values are never numbers, and bookkeeping keys, are left out.
 */
export function epochMetricGroups(
  log: Record<string, number | null>[]
): string[][] {
  const groups = new Map<string, Set<string>>();
  for (const entry of log) {
    for (const [key, value] of Object.entries(entry)) {
      if (NON_METRIC_KEYS.has(key) || typeof value !== 'number') {
        continue;
      }
      const base = key.startsWith('val_') ? key.slice(4) : key;
      const group = groups.get(base) ?? new Set<string>();
      group.add(key);
      groups.set(base, group);
    }
  }
  const bases = [...groups.keys()].sort(
    (a, b) => Number(b === 'loss') - Number(a === 'loss')
  );
  const isVal = (key: string) => Number(key.startsWith('val_'));
  return bases.map(base =>
    [...(groups.get(base) ?? [])].sort((a, b) => isVal(a) - isVal(b))
  );
}

/** A worker event as "workers lost at step 40: tcp://10.0.0.2:4011". */
export function eventLabel(event: IJobEvent): string {
  const kind = event.kind.replace(/_/g, ' ');
  const workers = (event.workers ?? []).join(', ');
  return `${kind} at step ${event.step}${workers ? `: ${workers}` : ''}`;
}

/**
 * The poll interval: fast while a job is running or stopping or a scale is
 * pending, slow otherwise.
 */
export function pollInterval(
  jobs: Pick<IJob, 'status'>[],
  pending: boolean
): number {
  return pending || jobs.some(isActive) ? FAST_POLL_MS : SLOW_POLL_MS;
}

/** A coordinate with at most 2 decimals, for short SVG paths. */
function coord(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/**
 * An SVG path "M..L.." drawing `values` evenly spaced over `width`, the
 * smallest at the bottom (y = height) and the largest at the top (y = 0).
 * Non-finite values are skipped; a single value or constant values give a
 * horizontal line at mid-height; no finite value gives "".
 */
export function sparklinePath(
  values: (number | null)[],
  width: number,
  height: number
): string {
  const points: [number, number][] = [];
  values.forEach((v, i) => {
    if (typeof v === 'number' && Number.isFinite(v)) {
      points.push([i, v]);
    }
  });
  if (points.length === 0) {
    return '';
  }
  const ys = points.map(p => p[1]);
  const min = Math.min(...ys);
  const max = Math.max(...ys);
  const mid = height / 2;
  if (points.length === 1) {
    return `M0,${coord(mid)}L${coord(width)},${coord(mid)}`;
  }
  const last = values.length - 1;
  return points
    .map(([i, v], k) => {
      const x = (i / last) * width;
      const y = max === min ? mid : height - ((v - min) / (max - min)) * height;
      return `${k === 0 ? 'M' : 'L'}${coord(x)},${coord(y)}`;
    })
    .join('');
}

/**
 * The [min, max] of the finite values, widened when they are all equal so
 * that a scale over it is never degenerate; null when none is finite.
 */
export function extent(values: (number | null)[]): [number, number] | null {
  const finite = values.filter(
    (v): v is number => typeof v === 'number' && Number.isFinite(v)
  );
  if (finite.length === 0) {
    return null;
  }
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    return [min - pad, max + pad];
  }
  return [min, max];
}

/** A "nice" tick step (1, 2 or 5 times a power of ten) splitting `span` in about `count` parts. */
function tickStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / power;
  const nice = norm >= 7.5 ? 10 : norm >= 3.5 ? 5 : norm >= 1.5 ? 2 : 1;
  return nice * power;
}

/** `v` without floating-point noise (0.30000000000000004 -> 0.3). */
function clean(v: number): number {
  return parseFloat(v.toPrecision(12));
}

/**
 * About `count` round tick values between `min` and `max` (both included
 * when they fall on a tick): niceTicks(0, 1, 5) = [0, 0.2, 0.4, 0.6, 0.8, 1].
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) {
    return [];
  }
  if (min === max) {
    return [min];
  }
  const step = tickStep(max - min, count);
  const first = Math.ceil(clean(min / step));
  const last = Math.floor(clean(max / step));
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) {
    ticks.push(clean(k * step));
  }
  return ticks;
}

/**
 * The extent of `values` widened outwards to round tick values, for a chart
 * axis; null when no value is finite.
 */
export function niceDomain(
  values: (number | null)[],
  count = 5
): [number, number] | null {
  const ext = extent(values);
  if (!ext) {
    return null;
  }
  const step = tickStep(ext[1] - ext[0], count);
  return [
    clean(Math.floor(clean(ext[0] / step)) * step),
    clean(Math.ceil(clean(ext[1] / step)) * step)
  ];
}

/** A linear map from `domain` onto `range`. */
export function linearScale(
  domain: [number, number],
  range: [number, number]
): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return v => r0 + (v - d0) * k;
}

/**
 * An SVG path through the points (xs[i], ys[i]) mapped by the scales; a
 * non-finite or missing coordinate breaks the line (the next point starts
 * with "M"). "" when no point is drawable.
 */
export function linePath(
  xs: (number | null)[],
  ys: (number | null)[],
  x: (v: number) => number,
  y: (v: number) => number
): string {
  let path = '';
  let pen = false;
  const n = Math.min(xs.length, ys.length);
  for (let i = 0; i < n; i++) {
    const xv = xs[i];
    const yv = ys[i];
    if (
      typeof xv !== 'number' ||
      typeof yv !== 'number' ||
      !Number.isFinite(xv) ||
      !Number.isFinite(yv)
    ) {
      pen = false;
      continue;
    }
    path += `${pen ? 'L' : 'M'}${coord(x(xv))},${coord(y(yv))}`;
    pen = true;
  }
  return path;
}

/** A tick label: "0.2", "1500", "1.2e+5", "3e-4". */
export function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) {
    return v.toExponential(1).replace(/\.0e/, 'e');
  }
  return String(clean(v));
}
