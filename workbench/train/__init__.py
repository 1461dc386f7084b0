"""Distributed data-parallel training: the Estimator, its parameter server, optimizers and callbacks."""

from workbench.train.callbacks import Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ProgressBar
from workbench.train.estimator import Estimator

__all__ = ["Estimator", "Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "ProgressBar"]
