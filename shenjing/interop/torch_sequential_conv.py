"""The convolution and pooling part of to_torch_sequential (see torch_sequential): the torch
modules for our Conv, DepthwiseConv, SeparableConv, ConvTranspose, pooling and global pooling
layers, with our padding rules turned into torch's padding or an explicit ConstantPad."""

import collections

from ..layers import conv
from ..layers.core import activation_name
from ..ops.conv import resolve_padding
from ..ops.conv_transpose import conv_transpose_crops

__all__ = ["ConvModules"]


class ConvModules:
    """Mixed into torch_sequential's builder, whose nn, add, layout, loaded, activation,
    refuse and dtype these use; channels go first before each of these layers."""

    def channels_last(self, layer):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            self.refuse(layer, "has data_format='channels_first'; only channels_last models "
                        "are converted.")

    def pads(self, layer, window, strides, dilation, padding):
        """(torch conv padding, a ConstantPad module or None) computing our padding."""
        spatial = layer.input_shape[1:-1]
        if padding == "valid":
            return 0, None
        if padding == "same" and set(strides) == {1}:  # pads d(k-1) in all, whatever n is
            pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                     for k, d in zip(window, dilation)]
            if all(a == b for a, b in pairs):
                return "same", None
            return 0, self.zero_pad(pairs)  # torch's 'same' would copy the input to pad it
        if padding == "same" and None in spatial:
            self.refuse(layer, f"has padding='same' with strides {tuple(strides)} and input "
                        f"shape {layer.input_shape}: the pads depend on the unknown size.")
        pairs = resolve_padding(padding, spatial, window, strides, dilation)
        if all(a == b for a, b in pairs):
            return tuple(a for a, _ in pairs), None
        return 0, self.zero_pad(pairs)

    def zero_pad(self, pairs, value=0.0):
        flat = [p for pair in reversed(pairs) for p in pair]  # torch: last axis first
        return self.nn.ConstantPad1d(flat, value) if len(pairs) == 1 else \
            self.nn.ConstantPad2d(flat, value)

    def conv(self, layer):
        self.channels_last(layer)
        self.layout(first=True)
        r = layer.rank
        padding, pad = self.pads(layer, layer.kernel_size, layer.strides, layer.dilation_rate,
                                 layer.padding)
        if pad is not None:
            self.add(pad)
        conv_cls = getattr(self.nn, f"Conv{r}d")
        c = layer.input_shape[-1]
        common = {"stride": layer.strides, "padding": padding, "dilation": layer.dilation_rate,
                  "dtype": self.dtype(layer)}
        if isinstance(layer, conv.Conv1D | conv.Conv2D):
            module = conv_cls(c, layer.filters, layer.kernel_size, bias=layer.use_bias, **common)
            self.add(self.loaded(module, layer))
        else:
            m = layer.depth_multiplier
            depthwise = conv_cls(c, c * m, layer.kernel_size, groups=c, **common,
                                 bias=layer.use_bias and not hasattr(layer, "pointwise_kernel"))
            if not hasattr(layer, "pointwise_kernel"):
                self.add(self.loaded(depthwise, layer))
            else:
                pointwise = conv_cls(c * m, layer.filters, 1, bias=layer.use_bias,
                                     dtype=self.dtype(layer))
                self.add(self.loaded(self.nn.Sequential(collections.OrderedDict(
                    depthwise=depthwise, pointwise=pointwise)), layer))
        self.activation(layer, activation_name(layer.activation))

    def conv_transpose(self, layer):
        """torch's ConvTranspose crops p in front and p - output_padding at the end of the full
        output; where Keras's crops (conv_transpose_crops) are not of that form, the module
        computes the full output (extended by output_padding) and a ConstantPad with negative
        pads crops it."""
        self.channels_last(layer)
        self.layout(first=True)
        crops = [conv_transpose_crops(1, k, s, layer.padding,
                                      None if layer.output_padding is None else p, d)[:2]
                 for k, s, d, p in zip(layer.kernel_size, layer.strides, layer.dilation_rate,
                                       layer.output_padding or (0,) * layer.rank)]
        direct = all(0 <= a - b < max(s, d) and a >= 0 for (a, b), s, d in
                     zip(crops, layer.strides, layer.dilation_rate))
        padding = [a if direct else 0 for a, _ in crops]
        extra = [a - b if direct else max(-b, 0) for a, b in crops]
        module = getattr(self.nn, f"ConvTranspose{layer.rank}d")(
            layer.input_shape[-1], layer.filters, layer.kernel_size, stride=layer.strides,
            padding=padding, output_padding=extra, dilation=layer.dilation_rate,
            bias=layer.use_bias, dtype=self.dtype(layer))
        self.add(self.loaded(module, layer))
        if not direct and any(a or b > 0 for a, b in crops):
            self.add(self.zero_pad([(-a, -max(b, 0)) for a, b in crops]))
        self.activation(layer, activation_name(layer.activation))

    def pool(self, layer):
        self.channels_last(layer)
        self.layout(first=True)
        r, is_max = layer.rank, "Max" in type(layer).__name__
        pairs = resolve_padding(layer.padding, layer.input_shape[1:-1], layer.pool_size,
                                layer.strides, (1,) * r) if layer.padding == "same" and \
            None not in layer.input_shape[1:-1] else ((0, 0),) * r
        if layer.padding == "same" and None in layer.input_shape[1:-1]:
            self.refuse(layer, f"has padding='same' on input shape {layer.input_shape}: the "
                        "pads depend on the unknown size.")
        if any(any(p) for p in pairs):
            if not is_max:
                self.refuse(layer, f"has padding='same' with pads {pairs} on input shape "
                            f"{layer.input_shape}; torch's average pool would count them.")
            self.add(self.zero_pad(pairs, value=-float("inf")))
        cls = getattr(self.nn, f"{'Max' if is_max else 'Avg'}Pool{r}d")
        self.add(cls(layer.pool_size, layer.strides))

    def global_pool(self, layer):
        self.channels_last(layer)
        self.layout(first=True)
        kind = "Max" if "Max" in type(layer).__name__ else "Avg"
        self.add(getattr(self.nn, f"Adaptive{kind}Pool{layer.rank}d")(1))
        if not layer.keepdims:
            self.add(self.nn.Flatten())
