"""The errors shenjing raises on bad input: each is a ValueError or TypeError, so code that
catches those keeps working, and each derives from ShenjingError, so a caller (or a test) can
tell ours, with a message naming the argument, layer or file, from an internal failure.
"""


class ShenjingError(Exception):
    """Base of the errors shenjing raises on purpose for bad input."""


class ArgumentError(ShenjingError, ValueError):
    """An argument has the right type but a value we refuse (a negative batch size, a stride of
    zero); the message names the function or layer, the argument, what it expects and got."""


class ArgumentTypeError(ShenjingError, TypeError):
    """An argument of the wrong type (a float kernel size, a string array as input)."""


__all__ = ["ArgumentError", "ArgumentTypeError", "ShenjingError"]
