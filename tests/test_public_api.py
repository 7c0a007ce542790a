"""Every public name resolves, so a misspelt export fails here."""

import importlib

import pytest

MODULES = [
    "shenjing", "shenjing.ops", "shenjing.layers", "shenjing.models", "shenjing.losses",
    "shenjing.metrics", "shenjing.optimizers", "shenjing.schedules", "shenjing.callbacks",
    "shenjing.datasets", "shenjing.errors", "shenjing.io", "shenjing.saving", "shenjing.interop",
    "shenjing.preprocessing", "shenjing.preprocessing.sequence", "shenjing.distribution",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    assert module.__all__, name
    for export in module.__all__:
        assert getattr(module, export) is not None, f"{name}.{export}"
    assert len(set(module.__all__)) == len(module.__all__)


def test_keras_names_are_exported():
    import shenjing as sj

    for layer in ("Conv2D", "MaxPooling2D", "BatchNormalization", "LSTM", "GRU", "SimpleRNN",
                  "Dense", "Flatten", "Dropout", "Embedding", "Bidirectional", "Subtract",
                  "Average", "Maximum", "Minimum", "Dot", "Attention", "AdditiveAttention",
                  "MultiHeadAttention", "Lambda"):
        assert isinstance(getattr(sj.layers, layer), type)
    for layer in ("RNN", "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells", "ConvLSTM2D"):
        assert isinstance(getattr(sj.layers, layer), type)
    for form in ("add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate",
                 "dot"):
        assert callable(getattr(sj.layers, form))
    for method in ("compile", "fit", "evaluate", "predict", "summary", "save"):
        assert callable(getattr(sj.Sequential, method))


def test_preprocessing_and_augmentation_layers_are_exported():
    import shenjing as sj
    from shenjing.saving import registry

    for layer in ("Rescaling", "Normalization", "Resizing", "RandomFlip", "RandomRotation",
                  "RandomTranslation", "RandomZoom", "RandomContrast"):
        assert isinstance(getattr(sj.layers, layer), type)
        assert layer in registry.registered()  # loadable from saved files
