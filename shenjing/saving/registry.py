"""The allow-list of classes a saved config may name. Loading looks names up here (and in the
``custom_objects`` passed explicitly), never imports a module or attribute found in a file.

Only classes that build to a working layer are listed: the bare ``Layer`` and the private base
classes (whose ``call`` is ``Layer.call``) are not, so a file cannot rebuild a do-nothing layer.
Errors raised while a layer is rebuilt come back as ``LayerConfigError``, which names the chain
of layers from the outermost and, for an unknown constructor argument, the argument.
"""

import contextlib
import contextvars
import inspect

from ..errors import ArgumentError, ArgumentTypeError, ShenjingError

_REGISTRY: dict[str, type] = {}
# The custom_objects of the load in progress, so that layers rebuilt inside a wrapper
# (Bidirectional, TimeDistributed) see them too.
_custom_objects: contextvars.ContextVar = contextvars.ContextVar("custom_objects", default=None)
# The layers a functional model's from_config has rebuilt so far (its own, not nested ones'),
# to say which node reference failed when it fails with an IndexError.
_rebuilt: contextvars.ContextVar = contextvars.ContextVar("rebuilt", default=None)


class CustomObjectError(ArgumentTypeError):
    """A custom_objects entry (or a registered object) that is not the class it must be: the
    caller's mistake, not the file's, so it is not turned into a file error."""


class LayerConfigError(ArgumentError):
    """A saved layer config that cannot be rebuilt. ``where`` lists the layers from the
    outermost ("Sequential 'small'", "Dense 'dense'"); ``problem`` says what is wrong."""

    def __init__(self, where, problem):
        self.where, self.problem = list(where), problem
        super().__init__(f"{' > '.join(self.where)}: {problem}")


_NAMES: dict[type, str] = {}  # the key each registered class is saved under


@contextlib.contextmanager
def rebuilding(path, field):
    """Rebuild a model from a file's config inside this block: a config the layers refuse
    (LayerConfigError) or one nested past Python's recursion limit becomes FileFormatError,
    naming the file, the config's field and the chain of layers."""
    from ..io import FileFormatError

    try:
        yield
    except LayerConfigError as error:
        raise FileFormatError(path, error.problem,
                              field=f"{field}: {' > '.join(error.where)}") from error
    except RecursionError:
        raise FileFormatError(path, "the layers nest too deeply to rebuild",
                              field=field) from None


def register(cls=None, *, name=None):
    """Allow ``cls`` in saved configs: ``@register`` or ``register(MyLayer)``."""

    def add(target):
        _check_layer_class(target, f"register: {name or getattr(target, '__name__', target)!r}")
        _REGISTRY[name or target.__name__] = target
        _NAMES[target] = name or target.__name__
        return target

    return add if cls is None else add(cls)


def register_keras_serializable(package="Custom", name=None):
    """Keras's decorator: ``@register_keras_serializable(package="MyLib")`` allows the class in
    saved configs under the key ``"MyLib>MyLayer"`` (``name`` replaces the class name). Here it
    takes Layer and Model subclasses, the only classes a shenjing config names."""
    if not isinstance(package, str) or ">" in package:
        raise ArgumentTypeError(f"register_keras_serializable: package must be a string "
                                f"without '>', got {package!r:.60}.")

    def decorator(cls):
        key = f"{package}>{name or getattr(cls, '__name__', cls)}"
        if not callable(getattr(cls, "get_config", None)):
            raise CustomObjectError(f"register_keras_serializable: cannot register {key!r}, "
                                    "which has no get_config method.")
        return register(cls, name=key)

    return decorator


def get_registered_name(obj) -> str:
    """The key a class is saved under: its registered one, else its class name."""
    return _NAMES.get(obj, getattr(obj, "__name__", type(obj).__name__))


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class saved under ``name``: from custom_objects, then module_objects, then the
    registered ones; None if none has it."""
    for source in (custom_objects, module_objects):
        if source and name in source:
            return source[name]
    return registered().get(name)


def registered() -> dict[str, type]:
    _load_builtins()
    return dict(_REGISTRY)


def _load_builtins():
    if not _REGISTRY.get("Dense"):
        from .. import layers, models

        for module in (layers, models):
            for export in module.__all__:
                obj = getattr(module, export)
                if _builds_a_working_layer(obj):
                    _REGISTRY.setdefault(export, obj)


def _builds_a_working_layer(obj) -> bool:
    """A Layer subclass with its own ``call`` (the bare Layer and abstract bases have none)."""
    from ..layers.base import Layer

    return isinstance(obj, type) and issubclass(obj, Layer) and obj.call is not Layer.call


def _check_layer_class(cls, where):
    if not isinstance(cls, type):
        raise CustomObjectError(f"{where}: expected a Layer subclass, got "
                                f"{type(cls).__name__} {cls!r:.80}.")
    if not _builds_a_working_layer(cls):
        raise CustomObjectError(f"{where}: expected a Layer subclass that implements call(), "
                                f"got {cls.__name__}.")


def custom_objects_in_use() -> dict:
    """The custom_objects of the load in progress ({} outside one), for layers whose config
    names functions (Lambda) rather than classes."""
    return dict(_custom_objects.get() or {})


def serialize_layer(layer) -> dict:
    return {"class_name": get_registered_name(type(layer)), "config": layer.get_config()}


def deserialize_layer(spec, custom_objects=None):
    """Rebuild a layer from {"class_name", "config"} using only allowed classes.

    Raises LayerConfigError naming the layer (and the layers around it) for any config the
    class refuses; the weight errors of load_model (FileFormatError) pass through as they are.
    """
    token = _custom_objects.set(custom_objects) if custom_objects is not None else None
    rebuilt, inner = _rebuilt.get(), _rebuilt.set(None)  # layers inside this one are not listed
    try:
        layer = _deserialize(spec, _custom_objects.get() or {})
    finally:
        _rebuilt.reset(inner)
        if token is not None:
            _custom_objects.reset(token)
    if rebuilt is not None:
        rebuilt.append(layer)
    return layer


def _deserialize(spec, custom_objects):
    from ..io import FileFormatError

    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise LayerConfigError(["layer"], "a layer entry must be {'class_name': str, 'config': "
                                          f"{{...}}}}, got {spec!r:.200}")
    name = spec["class_name"]
    config = spec.get("config", {})
    label = f"{name} {config.get('name')!r}" if isinstance(config, dict) else name
    cls = _resolve(name, custom_objects, label)
    if not isinstance(config, dict):
        raise LayerConfigError([label], f"the config must be an object, got {config!r:.200}")
    try:
        _check_wrapped_layer(cls, config, custom_objects)
        from ..models import Model

        if issubclass(cls, Model) and cls.call is Model.call:  # graphs rebuild their layers
            from .validate import check_model_config

            check_model_config(cls, config)
            return _model_from_config(cls, config, custom_objects)
        return cls.from_config(config)
    except (FileFormatError, CustomObjectError):
        raise
    except LayerConfigError as error:
        raise LayerConfigError([label, *error.where], error.problem) from error
    except (ShenjingError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise LayerConfigError([label], _explain(cls, config, error)) from error


def _model_from_config(cls, config, custom_objects):
    """cls.from_config; an IndexError (a node reference's output index past its node's
    outputs, which only the rebuilt layers know) becomes an error naming the reference."""
    from .validate import explain_output_index

    token = _rebuilt.set([])
    try:
        return cls.from_config(config, custom_objects=custom_objects)
    except IndexError as error:
        problem = explain_output_index(config, _rebuilt.get())
        if problem is None:
            raise
        raise ArgumentError(problem) from error
    finally:
        _rebuilt.reset(token)


def _resolve(name, custom_objects, label):
    """The class a config names: custom_objects first (each must be a working Layer class),
    then the allow-list."""
    for key in (name, name.rpartition(">")[2]):  # "Custom>MyLayer" also as "MyLayer"
        if key in custom_objects:
            _check_layer_class(custom_objects[key], f"load_model: custom_objects[{key!r}]")
            return custom_objects[key]
    cls = registered().get(name)
    if cls is None:
        raise LayerConfigError([label], (
            f"the file names a layer class {name!r} that is not registered. Pass it in "
            f"custom_objects={{{name.rpartition('>')[2]!r}: ...}} or decorate the class with "
            "@shenjing.saving.register_keras_serializable(); classes are never imported by "
            "name from a file"
        ))
    return cls


def _check_wrapped_layer(cls, config, custom_objects):
    """Bidirectional wraps a recurrent layer, TimeDistributed any layer but an Input."""
    from ..layers import Bidirectional, InputLayer, TimeDistributed
    from ..layers.recurrent import _RNN
    from ..layers.rnn import RNN

    if not issubclass(cls, (Bidirectional, TimeDistributed)):
        return
    for key in ("layer", "backward_layer"):
        inner = config.get(key)
        if not isinstance(inner, dict):
            if key == "layer" or inner is not None:
                raise ArgumentError(f"'{key}' must be a layer entry {{'class_name', 'config'}}, "
                                    f"got {inner!r:.100}")
            continue
        inner_name = inner.get("class_name")
        inner_cls = _resolve(inner_name, custom_objects, f"{inner_name}") if isinstance(
            inner_name, str) else None
        if issubclass(cls, Bidirectional):
            if inner_cls is None or not issubclass(inner_cls, (_RNN, RNN)):
                raise ArgumentError(f"'{key}' must be a recurrent layer (SimpleRNN, LSTM, GRU, RNN), "
                                    f"got {inner_name!r}")
        elif inner_cls is None or issubclass(inner_cls, InputLayer):
            raise ArgumentError(f"'{key}' must be a layer other than an Input, got "
                                f"{inner_name!r}")


def _explain(cls, config, error) -> str:
    """The problem in words: the unknown arguments by name if that is what failed."""
    unknown = _unknown_arguments(cls, config) if isinstance(error, TypeError) else []
    if unknown:
        return (f"unknown argument{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))} for {cls.__name__}")
    if isinstance(error, ShenjingError):  # already names the layer: drop that part
        own = f"{cls.__name__} {config.get('name')!r}: "
        message = str(error)
        return message.removeprefix(own).rstrip(".")
    return f"{type(error).__name__}: {error}"


def _unknown_arguments(cls, config) -> list:
    """The config keys no constructor in cls's chain of ``__init__(..., **kwargs)`` takes."""
    accepted = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        accepted |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                               p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return sorted(key for key in config if key not in accepted)
