import type { ICluster, IJob, IWorker } from '../api';
import {
  basename,
  clusterSummary,
  epochMetricGroups,
  eventLabel,
  extent,
  FAST_POLL_MS,
  formatBytes,
  formatCpu,
  formatLoss,
  formatMetrics,
  formatTick,
  isActive,
  jobStatusText,
  linearScale,
  linePath,
  niceDomain,
  niceTicks,
  pollInterval,
  progressText,
  SLOW_POLL_MS,
  sparklinePath,
  workerMemory,
  workerMemoryText
} from '../format';

const GiB = 2 ** 30;

function worker(overrides: Partial<IWorker> = {}): IWorker {
  return {
    name: '0',
    address: 'tcp://127.0.0.1:4011',
    cores: 1,
    memory: 4 * GiB,
    memory_used: 0,
    cpu: 0,
    tasks: 0,
    status: 'running',
    ...overrides
  };
}

function job(overrides: Partial<IJob> = {}): IJob {
  return {
    id: '9c1e0b2a7d44',
    name: 'MLP',
    kernel_id: 'k',
    notebook: 'dir/train.ipynb',
    status: 'running',
    failures_recovered: 0,
    error: null,
    epoch: 2,
    epochs: 5,
    step: 120,
    steps_per_epoch: 60,
    progress: 0.4,
    loss: 0.4312,
    metrics: {},
    samples_per_s: null,
    workers: 2,
    started: 0,
    ended: null,
    sparkline: [],
    ...overrides
  };
}

/** The (x, y) points of an "M..L.." path. */
function points(path: string): number[][] {
  return path
    .split(/[ML]/)
    .filter(Boolean)
    .map(p => p.split(',').map(Number));
}

describe('formatBytes', () => {
  it('writes Dask-style binary units', () => {
    expect(formatBytes(4 * GiB)).toBe('4.00 GiB');
    expect(formatBytes(8 * GiB)).toBe('8.00 GiB');
    expect(formatBytes(1.5 * 2 ** 20)).toBe('1.50 MiB');
    expect(formatBytes(2 ** 40)).toBe('1.00 TiB');
    expect(formatBytes(3 * 2 ** 50)).toBe('3.00 PiB');
  });

  it('keeps small sizes in bytes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(921)).toBe('921 B');
  });

  it('switches unit at 0.9 of it, like dask.utils.format_bytes', () => {
    expect(formatBytes(922)).toBe('0.90 kiB');
    expect(formatBytes(0.95 * GiB)).toBe('0.95 GiB');
    expect(formatBytes(0.85 * GiB)).toBe('870.40 MiB');
  });
});

describe('formatLoss', () => {
  it('keeps 4 significant digits', () => {
    expect(formatLoss(0.43124)).toBe('0.4312');
    expect(formatLoss(0.43125001)).toBe('0.4313');
    expect(formatLoss(2.302585)).toBe('2.303');
    expect(formatLoss(0.5)).toBe('0.5000');
    expect(formatLoss(123.456)).toBe('123.5');
  });

  it('writes "-" for missing or non-finite values', () => {
    expect(formatLoss(null)).toBe('-');
    expect(formatLoss(undefined)).toBe('-');
    expect(formatLoss(NaN)).toBe('-');
    expect(formatLoss(Infinity)).toBe('-');
  });

  it('formats metrics as name/value pairs', () => {
    expect(formatMetrics({ accuracy: 0.91, val_loss: 0.5 })).toBe(
      'accuracy 0.9100 · val_loss 0.5000'
    );
    expect(formatMetrics({})).toBe('');
  });
});

describe('jobStatusText', () => {
  it('writes plain statuses', () => {
    expect(jobStatusText(job())).toBe('running');
    expect(jobStatusText(job({ status: 'finished' }))).toBe('finished');
    expect(jobStatusText(job({ status: 'stopped' }))).toBe('stopped');
    expect(jobStatusText(job({ status: 'stopping' }))).toBe('stopping');
  });

  it('counts recovered failures, singular and plural', () => {
    expect(jobStatusText(job({ failures_recovered: 1 }))).toBe(
      'running · recovered from 1 failure'
    );
    expect(jobStatusText(job({ failures_recovered: 3 }))).toBe(
      'running · recovered from 3 failures'
    );
    expect(
      jobStatusText(job({ status: 'finished', failures_recovered: 2 }))
    ).toBe('finished · recovered from 2 failures');
  });

  it('shows the error of a failed job', () => {
    expect(
      jobStatusText(
        job({
          status: 'failed',
          error: 'TrainingFailed: boom',
          failures_recovered: 1
        })
      )
    ).toBe('failed: TrainingFailed: boom');
    expect(jobStatusText(job({ status: 'failed', error: null }))).toBe(
      'failed'
    );
  });

  it('tells active jobs', () => {
    expect(isActive(job())).toBe(true);
    expect(isActive(job({ status: 'stopping' }))).toBe(true);
    expect(isActive(job({ status: 'finished' }))).toBe(false);
  });
});

describe('progressText', () => {
  it('writes epoch, step and percent', () => {
    expect(progressText(job())).toBe('epoch 2/5 · step 120 · 40%');
    expect(progressText(job({ epoch: 5, step: 300, progress: 1 }))).toBe(
      'epoch 5/5 · step 300 · 100%'
    );
  });

  it('rounds and clamps the percentage', () => {
    expect(progressText(job({ epoch: 0, step: 1, progress: 0.0049 }))).toBe(
      'epoch 0/5 · step 1 · 0%'
    );
    expect(progressText(job({ progress: 0.666 }))).toBe(
      'epoch 2/5 · step 120 · 67%'
    );
    expect(progressText(job({ progress: 1.2 }))).toBe(
      'epoch 2/5 · step 120 · 100%'
    );
  });
});

describe('clusterSummary', () => {
  it('sums workers, cores and memory limits', () => {
    const cluster: Pick<ICluster, 'workers'> = {
      workers: [worker({ name: '0' }), worker({ name: '1' })]
    };
    expect(clusterSummary(cluster)).toBe('2 workers · 2 cores · 8.00 GiB');
  });

  it('uses singulars for one', () => {
    expect(clusterSummary({ workers: [worker({ memory: 2 * GiB })] })).toBe(
      '1 worker · 1 core · 2.00 GiB'
    );
    expect(clusterSummary({ workers: [worker({ cores: 4 })] })).toBe(
      '1 worker · 4 cores · 4.00 GiB'
    );
  });

  it('handles no worker and unlimited memory', () => {
    expect(clusterSummary({ workers: [] })).toBe('0 workers · 0 cores · 0 B');
    expect(clusterSummary({ workers: [worker(), worker({ memory: 0 })] })).toBe(
      '2 workers · 2 cores · no memory limit'
    );
  });

  it('writes worker memory and cpu', () => {
    expect(workerMemoryText(worker({ memory_used: 512 * 2 ** 20 }))).toBe(
      '512.00 MiB / 4.00 GiB'
    );
    expect(workerMemoryText(worker({ memory: 0, memory_used: 100 }))).toBe(
      '100 B / no limit'
    );
    expect(workerMemory(worker({ memory_used: 2 ** 30 }))).toEqual([
      '1.00 GiB',
      '4.00 GiB'
    ]);
    expect(formatCpu(12.5)).toBe('13%');
    expect(formatCpu(0)).toBe('0%');
  });
});

describe('sparklinePath', () => {
  it('draws values evenly over the width, smallest at the bottom', () => {
    expect(sparklinePath([1, 0, 0.5], 100, 20)).toBe('M0,0L50,20L100,10');
  });

  it('returns "" for no value', () => {
    expect(sparklinePath([], 100, 20)).toBe('');
    expect(sparklinePath([NaN, Infinity, null], 100, 20)).toBe('');
  });

  it('draws a flat line for one value or constant values', () => {
    expect(sparklinePath([0.7], 100, 20)).toBe('M0,10L100,10');
    expect(sparklinePath([2, 2, 2], 100, 20)).toBe('M0,10L50,10L100,10');
  });

  it('skips non-finite values but keeps the others in place', () => {
    const path = sparklinePath([1, NaN, Infinity, -Infinity, 0], 90, 10);
    expect(path).toBe('M0,0L90,10');
    expect(path).not.toMatch(/NaN|Infinity/);
  });

  it('stays inside the box with short coordinates', () => {
    const values = Array.from(
      { length: 64 },
      (_, i) => Math.exp(-i / 10) + 0.01 * Math.sin(i)
    );
    const pts = points(sparklinePath(values, 96, 22));
    expect(pts).toHaveLength(64);
    for (const [x, y] of pts) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThanOrEqual(96);
      expect(y).toBeGreaterThanOrEqual(0);
      expect(y).toBeLessThanOrEqual(22);
    }
    expect(pts[0]).toEqual([0, 0]);
    expect(pts[63][0]).toBe(96);
  });
});

describe('chart scaling', () => {
  it('finds round ticks', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 100, 4)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(0.13, 0.92, 4)).toEqual([0.2, 0.4, 0.6, 0.8]);
    expect(niceTicks(10, 1990, 5)).toEqual([500, 1000, 1500]);
  });

  it('handles degenerate tick ranges', () => {
    expect(niceTicks(3, 3)).toEqual([3]);
    expect(niceTicks(1, 0)).toEqual([]);
    expect(niceTicks(NaN, 1)).toEqual([]);
  });

  it('computes extents of finite values, padded when constant', () => {
    expect(extent([3, 1, NaN, null, 2])).toEqual([1, 3]);
    expect(extent([5, 5])).toEqual([4.5, 5.5]);
    expect(extent([0])).toEqual([-1, 1]);
    expect(extent([null, NaN])).toBeNull();
  });

  it('widens a domain to round values', () => {
    expect(niceDomain([0.13, 0.92])).toEqual([0, 1]);
    expect(niceDomain([0.42, 0.47])).toEqual([0.42, 0.47]);
    expect(niceDomain([12, 87])).toEqual([0, 100]);
    expect(niceDomain([12, 87], 8)).toEqual([10, 90]);
    expect(niceDomain([])).toBeNull();
  });

  it('maps linearly, including reversed ranges', () => {
    const y = linearScale([0, 10], [200, 0]);
    expect(y(0)).toBe(200);
    expect(y(10)).toBe(0);
    expect(y(2.5)).toBe(150);
    expect(linearScale([1, 1], [0, 50])(1)).toBe(0);
  });

  it('breaks lines at missing points', () => {
    const id = (v: number) => v;
    expect(linePath([0, 1, 2], [5, 6, 7], id, id)).toBe('M0,5L1,6L2,7');
    expect(linePath([0, 1, 2, 3], [5, null, 7, 8], id, id)).toBe(
      'M0,5M2,7L3,8'
    );
    expect(linePath([0, 1], [NaN, Infinity], id, id)).toBe('');
    expect(linePath([0, 1, 2], [1, 2], id, id)).toBe('M0,1L1,2');
  });

  it('labels ticks compactly', () => {
    expect(formatTick(0.30000000000000004)).toBe('0.3');
    expect(formatTick(1500)).toBe('1500');
    expect(formatTick(0)).toBe('0');
    expect(formatTick(250000)).toBe('2.5e+5');
    expect(formatTick(0.0001)).toBe('1e-4');
  });
});

describe('job view helpers', () => {
  it('groups epoch metrics with their val_ twins, loss first', () => {
    const log = [
      {
        epoch: 0,
        accuracy: 0.7,
        loss: 0.8,
        val_loss: 0.85,
        val_accuracy: 0.6,
        time: 1.2
      },
      {
        epoch: 1,
        accuracy: 0.8,
        loss: 0.6,
        val_loss: 0.7,
        val_accuracy: 0.7,
        time: 1.1
      }
    ];
    expect(epochMetricGroups(log)).toEqual([
      ['loss', 'val_loss'],
      ['accuracy', 'val_accuracy']
    ]);
  });

  it('leaves out bookkeeping keys and non-numeric values', () => {
    expect(
      epochMetricGroups([
        { epoch: 0, loss: 0.5, samples_per_s: 100, workers: 2, auc: null },
        { epoch: 1, val_auc: 0.7 }
      ])
    ).toEqual([['loss'], ['val_auc']]);
    expect(epochMetricGroups([])).toEqual([]);
  });

  it('labels worker events', () => {
    expect(
      eventLabel({ kind: 'workers_lost', step: 40, workers: ['tcp://a:1'] })
    ).toBe('workers lost at step 40: tcp://a:1');
    expect(eventLabel({ kind: 'workers_joined', step: 7, workers: [] })).toBe(
      'workers joined at step 7'
    );
  });

  it('takes the file name of a notebook path', () => {
    expect(basename('dir/sub/train.ipynb')).toBe('train.ipynb');
    expect(basename('train.ipynb')).toBe('train.ipynb');
    expect(basename(null)).toBe('');
  });
});

describe('pollInterval', () => {
  it('polls fast while a job is active', () => {
    expect(pollInterval([job({ status: 'finished' }), job()], false)).toBe(
      1000
    );
    expect(pollInterval([job({ status: 'stopping' })], false)).toBe(
      FAST_POLL_MS
    );
  });

  it('polls fast while a scale is pending', () => {
    expect(pollInterval([], true)).toBe(1000);
    expect(pollInterval([job({ status: 'stopped' })], true)).toBe(1000);
  });

  it('polls slowly otherwise', () => {
    expect(pollInterval([], false)).toBe(5000);
    expect(
      pollInterval(
        [job({ status: 'finished' }), job({ status: 'failed' })],
        false
      )
    ).toBe(SLOW_POLL_MS);
  });
});
