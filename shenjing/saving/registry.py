"""The allow-list of classes a saved config may name. Loading looks names up here (and in the
``custom_objects`` passed explicitly), never imports a module or attribute found in a file."""

_REGISTRY: dict[str, type] = {}


def register(cls=None, *, name=None):
    """Allow ``cls`` in saved configs: ``@register`` or ``register(MyLayer)``."""

    def add(target):
        _REGISTRY[name or target.__name__] = target
        return target

    return add if cls is None else add(cls)


def registered() -> dict[str, type]:
    _load_builtins()
    return dict(_REGISTRY)


def _load_builtins():
    if not _REGISTRY.get("Dense"):
        from .. import layers, models

        for module in (layers, models):
            for export in module.__all__:
                obj = getattr(module, export)
                if isinstance(obj, type):
                    _REGISTRY.setdefault(export, obj)


def serialize_layer(layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize_layer(spec, custom_objects=None):
    """Rebuild a layer from {"class_name", "config"} using only allowed classes."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise ValueError(f"load_model: a layer entry must be {{'class_name', 'config'}}, got {spec!r:.200}.")
    name = spec["class_name"]
    allowed = {**registered(), **(custom_objects or {})}
    cls = allowed.get(name)
    if cls is None:
        raise ValueError(
            f"load_model: the file names a layer class {name!r} that is not registered. Pass "
            "it in custom_objects={...} or decorate it with shenjing.saving.register; classes "
            "are never imported by name from a file."
        )
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"load_model: the config of {name!r} must be an object, got {config!r:.200}.")
    from ..models import Model

    if issubclass(cls, Model):  # models rebuild their own layers
        return cls.from_config(config, custom_objects=custom_objects)
    return cls.from_config(config)
