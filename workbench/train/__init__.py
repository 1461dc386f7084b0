"""Distributed data-parallel training: the Estimator, its parameter server, optimizers and callbacks."""

from workbench.train.callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ProgressBar
from workbench.train.estimator import Estimator
from workbench.train.run import TrainingFailed
from workbench.train.snapshots import SnapshotError
from workbench.train.worker import NonFiniteError

__all__ = [
    "Estimator", "Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "ProgressBar",
    "TrainingFailed", "SnapshotError", "NonFiniteError",
]
