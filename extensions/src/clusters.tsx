/**
 * The Clusters section of the sidebar: one card per Dask cluster with its
 * workers, scale/stop buttons and the code that connects a notebook to it.
 */
import { Clipboard } from '@jupyterlab/apputils';
import { copyIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import type { ICluster } from './api';
import {
  basename,
  clusterSummary,
  formatCpu,
  workerMemory,
  workerMemoryText
} from './format';
import type { WorkbenchModel } from './model';

/** Shown when the server knows no cluster. */
export const NO_CLUSTER_TEXT =
  'No Workbench cluster yet: run wb.init() in a notebook, or start a new local cluster.';

/** Who started the cluster: "kernel · nb.ipynb" or "server". */
function ownerText(cluster: ICluster): string {
  if (cluster.owner !== 'kernel') {
    return cluster.owner;
  }
  const notebook = basename(cluster.notebook);
  return notebook ? `kernel · ${notebook}` : 'kernel';
}

/** One cluster card. */
function ClusterCard(props: {
  cluster: ICluster;
  model: WorkbenchModel;
}): JSX.Element {
  const { cluster, model } = props;
  const pending = model.pendingWorkers(cluster.id);
  const current = pending ?? cluster.workers.length;
  const busy = model.busy;
  return (
    <div className="wb-cluster" data-cluster-id={cluster.id}>
      <div className="wb-cluster-header">
        <span className="wb-cluster-kind">{cluster.kind}</span>
        <span
          className="wb-cluster-owner"
          title={cluster.notebook ?? cluster.kernel_id ?? undefined}
        >
          {ownerText(cluster)}
        </span>
      </div>
      <div className="wb-cluster-scheduler" title="scheduler">
        {cluster.scheduler}
      </div>
      <div className="wb-cluster-line">
        <span className="wb-cluster-summary">{clusterSummary(cluster)}</span>
        {pending !== null && (
          <span className="wb-cluster-pending"> · scaling to {pending}</span>
        )}
        {cluster.dashboard && (
          <a
            className="wb-dashboard-link"
            href={cluster.dashboard}
            target="_blank"
            rel="noopener noreferrer"
          >
            Dashboard
          </a>
        )}
      </div>
      {cluster.workers.length > 0 && (
        <table className="wb-workers">
          <thead>
            <tr>
              <th>worker</th>
              <th>cores</th>
              <th>memory</th>
              <th>cpu</th>
              <th>status</th>
            </tr>
          </thead>
          <tbody>
            {cluster.workers.map(w => (
              <tr className="wb-worker" key={w.address} title={w.address}>
                <td>{w.name}</td>
                <td>{w.cores}</td>
                <td className="wb-worker-memory" title={workerMemoryText(w)}>
                  <span>{workerMemory(w)[0]}</span> /{' '}
                  <span>{workerMemory(w)[1]}</span>
                </td>
                <td>{formatCpu(w.cpu)}</td>
                <td>{w.status}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="wb-cluster-connect-row">
        <code className="wb-cluster-connect">{cluster.connect}</code>
        <button
          className="wb-copy-connect jp-Button jp-mod-minimal"
          title="Copy the connect code"
          onClick={() => Clipboard.copyToSystem(cluster.connect)}
        >
          <copyIcon.react tag="span" />
        </button>
      </div>
      {(cluster.can_scale || cluster.can_stop) && (
        <div className="wb-cluster-actions">
          {cluster.can_scale && (
            <>
              <button
                className="wb-scale-down jp-Button jp-mod-styled"
                title="Remove a worker"
                disabled={busy || current <= 1}
                onClick={() => void model.scale(cluster.id, current - 1)}
              >
                − worker
              </button>
              <button
                className="wb-scale-up jp-Button jp-mod-styled"
                title="Add a worker"
                disabled={busy}
                onClick={() => void model.scale(cluster.id, current + 1)}
              >
                + worker
              </button>
            </>
          )}
          {cluster.can_stop && (
            <button
              className="wb-cluster-stop jp-Button jp-mod-styled jp-mod-warn"
              title="Close this cluster"
              disabled={busy}
              onClick={() => void model.stopCluster(cluster.id)}
            >
              Stop
            </button>
          )}
        </div>
      )}
    </div>
  );
}

/** The Clusters section. */
export function ClustersPanel(props: { model: WorkbenchModel }): JSX.Element {
  const { model } = props;
  return (
    <section className="wb-clusters">
      <header className="wb-section-header">
        <h3>Clusters</h3>
        <button
          className="wb-new-cluster jp-Button jp-mod-styled jp-mod-accept"
          disabled={model.busy}
          onClick={() => void model.newCluster()}
        >
          New local cluster
        </button>
      </header>
      {model.clusters.length === 0
        ? model.loaded && <p className="wb-empty">{NO_CLUSTER_TEXT}</p>
        : model.clusters.map(c => (
            <ClusterCard key={c.id} cluster={c} model={model} />
          ))}
    </section>
  );
}
