"""The small torch.nn modules to_torch_sequential needs besides torch's own: Permute (channels
last <-> first), Reshape, and Recurrent (a batch_first RNN's sequence or final hidden state).

Defined on first use, so that shenjing imports without torch.
"""

__all__ = ["torch_classes"]

_CLASSES = {}


def torch_classes(torch):
    """The helper modules, made once (torch is imported lazily, so they live in here)."""
    if _CLASSES:
        return _CLASSES

    class Permute(torch.nn.Module):
        """x.permute(0, *dims): moves channels between last (ours) and first (torch's)."""

        def __init__(self, dims):
            super().__init__()
            self.dims = tuple(dims)

        def forward(self, x):
            return x.permute(0, *self.dims)

        def extra_repr(self):
            return f"dims={self.dims}"

    class Reshape(torch.nn.Module):
        """(batch, ...) -> (batch, *shape), as our Reshape."""

        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, x):
            return x.reshape(x.shape[0], *self.shape)

        def extra_repr(self):
            return f"shape={self.shape}"

    class Recurrent(torch.nn.Module):
        """A batch_first torch RNN's output sequence, or its final hidden state per direction
        concatenated (Keras's last output; Bidirectional's forward then backward)."""

        def __init__(self, rnn, return_sequences):
            super().__init__()
            self.rnn, self.return_sequences = rnn, return_sequences

        def forward(self, x):
            y, state = self.rnn(x)
            if self.return_sequences:
                return y
            h = state[0] if isinstance(state, tuple) else state  # (directions, N, units)
            return h.transpose(0, 1).reshape(x.shape[0], -1)

    _CLASSES.update(Permute=Permute, Reshape=Reshape, Recurrent=Recurrent)
    return _CLASSES
