"""Every Examples section in the package runs as written."""

import doctest
import importlib
import pkgutil

import pytest

import dcdm


def _modules():
    names = ["dcdm"]
    for sub in ("dcdm.solvers", "dcdm.kernels", "dcdm.problems", "dcdm.training"):
        pkg = importlib.import_module(sub)
        names.append(sub)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, sub + ".")]
    names.append("dcdm.cli")
    return sorted(set(names))


@pytest.mark.parametrize("name", _modules())
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_version():
    assert dcdm.__version__.count(".") == 2
