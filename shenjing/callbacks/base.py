"""Callback protocol, the list that dispatches to callbacks, and History."""

from ..distribution import context as distribution_context
from ..errors import ArgumentTypeError


class Callback:
    """Hooks called by fit. Override any of them; ``self.model`` and ``self.params`` are set."""

    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def get_state(self):
        """What a checkpoint saves of this callback for fit to resume it: plain JSON data (a
        dict; a list of arrays in it is stored as tensors), or None for nothing (the default)."""
        return

    def set_state(self, state):
        """Take back the state get_state returned, when fit resumes a loaded checkpoint."""

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...

    # as in Keras, on_batch_begin/on_batch_end are the older names of the train batch hooks
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]`` is a list over epochs."""

    def __init__(self):
        super().__init__()
        self.epoch, self.history = [], {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def check_callbacks(callbacks, where) -> list:
    """None, one Callback, or a list/tuple of them (Keras 3 flattens what it is given), as a
    list; anything else is refused naming where it went (fit, evaluate, predict)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise ArgumentTypeError(f"{where}: callbacks must be a list of "
                                f"shenjing.callbacks.Callback instances, got {callbacks!r:.80} "
                                f"of type {type(callbacks).__name__}.")
    for index, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            hint = " (a class: pass an instance, e.g. EarlyStopping())" if isinstance(
                callback, type) else ""
            raise ArgumentTypeError(f"{where}: callbacks[{index}] must be a "
                                    f"shenjing.callbacks.Callback instance{hint}, got "
                                    f"{callback!r:.80} of type {type(callback).__name__}.")
    return list(callbacks)


class CallbackList:
    """Calls each hook on every callback in order; the History and the progress bar (when
    verbose) come after the user's callbacks, as in Keras 3, so they see the keys those add to
    the logs (ReduceLROnPlateau's ``learning_rate``). Callbacks that save the model
    (``saves_model = True``: ModelCheckpoint) come after the other callbacks of the user, so
    that a checkpoint holds the state the others reached at that epoch (EarlyStopping's count
    of epochs without improvement, the learning rate ReduceLROnPlateau just set)."""

    def __init__(self, callbacks, model, history=None, verbose=0, params=None,
                 where="CallbackList"):
        callbacks = check_callbacks(callbacks, where)
        if not distribution_context.writes_files():  # DataParallel: rank 0 writes the logs
            callbacks = [c for c in callbacks if not getattr(c, "writes_files", False)]
        self.callbacks = sorted(callbacks, key=lambda c: getattr(c, "saves_model", False))
        if history is not None:
            self.callbacks.append(history)
        if verbose:
            from ..progbar import ProgbarLogger

            if not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
                self.callbacks.append(ProgbarLogger())
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(dict(params or {}))

    def _call(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)
