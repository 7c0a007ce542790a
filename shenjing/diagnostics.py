"""Gradient diagnostics: watch gradients vanish through time in a recurrent layer."""

import numpy as np

from . import losses as losses_module
from .errors import ArgumentError


def _recurrent_layers(model):
    from .layers.recurrent import _RNN

    return [layer for layer in model.layers if isinstance(layer, _RNN)]


def hidden_state_gradient_norms(model, x, y, layer=None, loss=None):
    """||dL/dh_t|| for every time step t of one recurrent layer, averaged over the batch.

    L is the model's compiled loss (or ``loss``) on (x, y) in inference mode; dL/dh_t is the
    total gradient reaching step t's hidden state, through the outputs and all later steps.
    A SimpleRNN's norms shrink geometrically towards t = 0 on long sequences (vanishing
    gradients); an LSTM's cell state carries them back. Returns an array (T,) in time order.
    Args: layer (the layer or its name; default the model's first recurrent layer).
    """
    candidates = _recurrent_layers(model)
    if isinstance(layer, str):
        layer = model.get_layer(layer)
    layer = layer or (candidates[0] if candidates else None)
    if layer is None or layer not in candidates:
        raise ArgumentError(f"hidden_state_gradient_norms: model '{model.name}' has no recurrent "
                            f"layer {getattr(layer, 'name', layer)!r}; recurrent layers: "
                            f"{[c.name for c in candidates]}.")
    loss_fn = losses_module.get(loss) if loss is not None else model._losses[0]
    layer.keep_state_grads = True
    try:
        prediction = model(x, training=False)
        loss_fn(y, prediction).backward()
        grads = layer.last_op.state_grads  # (T, N, u) in processing order
    finally:
        layer.keep_state_grads = False
        for variable in model.trainable_weights:
            variable.grad = None
    norms = np.linalg.norm(grads, axis=2).mean(axis=1)
    return norms[::-1] if layer.go_backwards else norms
