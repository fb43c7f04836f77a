"""Optional dependencies, imported in one way.

``import dcdm`` needs only NumPy, SciPy, array-api-compat and threadpoolctl. Everything
else (numba, pyamg, torch, safetensors, tqdm, matplotlib, CuPy) is imported where it is
first used, through :func:`require` (the feature cannot work without it: an
``ImportError`` that says which feature needs what and which extra installs it) or
:func:`maybe` (a nicety such as a progress bar: ``None`` when absent).

Examples
--------
>>> from dcdm.kernels.optional import maybe, require
>>> require("numpy", "the solvers").__name__
'numpy'
>>> maybe("a_module_that_is_not_there") is None
True
>>> try:
...     require("not_there", "M='demo'", extra="amg")
... except ImportError as exc:
...     print(exc)
M='demo' needs not_there, which is not installed; install the extra: pip install 'dcdm[amg]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "maybe", "require"]

#: the extra of ``pyproject.toml`` that installs each optional top-level module
EXTRAS: dict[str, str] = {
    "numba": "numba",
    "pyamg": "amg",
    "torch": "train",
    "safetensors": "train",
    "tqdm": "train",
    "matplotlib": "dev",
    "cupy": "cuda",
    "cupyx": "cuda",
}


def require(module: str, feature: str, *, extra: str | None = None, hint: str = "") -> ModuleType:
    """Import ``module`` for ``feature``, or raise an ``ImportError`` naming both.

    Parameters
    ----------
    module : str
        The module to import (``"pyamg"``, ``"torch"``, ``"dcdm.kernels.cpu"``...).
    feature : str
        What needs it, as the user asked for it (``"M='amg'"``, ``"dcdm train"``).
    extra : str, optional
        The package extra that installs it (default: looked up in :data:`EXTRAS` by the
        missing module's top-level name).
    hint : str
        Appended to the message (e.g. what to use instead).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        top = missing.split(".")[0]
        extra = extra or EXTRAS.get(top) or EXTRAS.get(module.split(".")[0])
        how = (f"install the extra: pip install 'dcdm[{extra}]'" if extra
               else f"install it: pip install {top}")
        raise ImportError(
            f"{feature} needs {top}, which is not installed; {how}{hint}"
        ) from exc


def maybe(module: str) -> ModuleType | None:
    """``module`` imported, or ``None`` if it (or something it needs) is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
