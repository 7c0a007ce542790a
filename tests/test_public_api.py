"""Every public name resolves, so a misspelt export fails here."""

import shenjing
import shenjing.ops


def test_every_name_in_all_exists():
    for module in (shenjing, shenjing.ops):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
        assert len(set(module.__all__)) == len(module.__all__)
