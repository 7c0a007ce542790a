"""Callbacks for fit: hooks at the start and end of training, epochs and batches."""

from .backup import BackupAndRestore
from .base import Callback, CallbackList, History
from .checkpoint import ModelCheckpoint
from .early_stopping import EarlyStopping, MonitorCallback
from .logging import CSVLogger, LambdaCallback, TerminateOnNaN
from .schedulers import LearningRateScheduler, ReduceLROnPlateau
from .tensorboard import TensorBoard

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
]


def __getattr__(name):
    # ProgbarLogger lives in shenjing.progbar, which imports this package: load it on first use
    if name == "ProgbarLogger":
        from ..progbar import ProgbarLogger

        return ProgbarLogger
    raise AttributeError(f"module 'shenjing.callbacks' has no attribute {name!r}")
