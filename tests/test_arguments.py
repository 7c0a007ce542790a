"""shenjing.arguments: the small checks behind every layer and fit argument."""

import numpy as np
import pytest

from shenjing import arguments
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.ops import activation


@pytest.mark.parametrize("value, error", [(True, ArgumentTypeError), (2.0, ArgumentTypeError),
                                          ("3", ArgumentTypeError), (None, ArgumentTypeError),
                                          (0, ArgumentError), (-5, ArgumentError),
                                          (2**31 + 1, ArgumentError)])
def test_positive_int_refuses_with_the_argument_named(value, error):
    with pytest.raises(error, match=r"^f: units must be a positive integer"):
        arguments.positive_int(value, "units", "f")


def test_positive_int_accepts_numpy_ints_as_python_ints():
    value = arguments.positive_int(np.int16(7), "units", "f")
    assert value == 7 and type(value) is int


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((1, 2), (1, 2)), ([2, 2], (2, 2))])
def test_int_tuple_expands_and_keeps(value, expected):
    assert arguments.int_tuple(value, 2, "strides", "f") == expected


@pytest.mark.parametrize("value, error", [(1.5, ArgumentTypeError), ((1, 2, 3), ArgumentError),
                                          ((1, True), ArgumentTypeError), ((1, 0), ArgumentError),
                                          ("2", ArgumentTypeError)])
def test_int_tuple_uses_keras_wording(value, error):
    with pytest.raises(error, match=r"strides must be .*\(a tuple of 2 integers\)"):
        arguments.int_tuple(value, 2, "strides", "f")


@pytest.mark.parametrize("value, error", [(1.0, ArgumentError), (-0.1, ArgumentError),
                                          (float("nan"), ArgumentError), (True, ArgumentTypeError),
                                          ("0.5", ArgumentTypeError)])
def test_rate_is_a_number_in_zero_one(value, error):
    with pytest.raises(error, match=r"f: rate must be .*\[0\.0, 1\.0\)"):
        arguments.rate(value, "rate", "f")


def test_lookup_names_the_argument_once_and_keeps_the_getters_list():
    with pytest.raises(ArgumentError) as caught:
        arguments.lookup(activation.get, "nope", "activation", "f")
    message = str(caught.value)
    assert message.startswith("f: activation: unknown activation 'nope'") and "relu" in message
    assert arguments.lookup(activation.get, "relu", "activation", "f") is activation.get("relu")


def test_check_elements_refuses_past_the_bound_only():
    arguments.check_elements(arguments.MAX_ELEMENTS, "the kernel", "f", "units")
    with pytest.raises(ArgumentError, match="f: the kernel would hold 2,147,483,649 values"):
        arguments.check_elements(arguments.MAX_ELEMENTS + 1, "the kernel", "f", "units")
