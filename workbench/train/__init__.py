"""Distributed data-parallel training: the Estimator, its parameter server, optimizers and callbacks.

The names below load on first use, so ``workbench.train.callbacks`` imports without the
training machinery (the JupyterLab job reporter hooks in through it).
"""

from workbench.lazy import lazy_attributes

_HOMES = {
    "Estimator": "workbench.train.estimator",
    "Callback": "workbench.train.callbacks",
    "EarlyStopping": "workbench.train.callbacks",
    "ModelCheckpoint": "workbench.train.callbacks",
    "LearningRateScheduler": "workbench.train.callbacks",
    "ProgressBar": "workbench.train.callbacks",
    "TrainingFailed": "workbench.train.run",
    "SnapshotError": "workbench.train.snapshots",
    "NonFiniteError": "workbench.train.worker",
}
__all__ = list(_HOMES)

__getattr__ = lazy_attributes(__name__, _HOMES)
