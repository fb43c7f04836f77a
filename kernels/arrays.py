"""What every layer asks of an array: its library, its device, a per-device cache, transfers.

The package runs on NumPy arrays, torch tensors (CPU and CUDA) and CuPy arrays. These
helpers are the one place that tells them apart (by type, without importing torch or
CuPy), keys caches by device, and moves arrays across at the edges of a solve (set-up
and tear-down, never inside an iteration).

Examples
--------
>>> import numpy as np
>>> from dcdm.kernels import arrays
>>> x = np.zeros(3, dtype=np.float32)
>>> arrays.library(x), arrays.device_key(x), arrays.array_key(x)
('numpy', ('numpy', 'cpu'), ('numpy', 'cpu', 'float32'))
>>> cache = arrays.DeviceCache()
>>> cache.get(x, lambda: "built once") is cache.get(x, lambda: "not again")
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "DeviceCache",
    "array_key",
    "asarray_like",
    "describe",
    "detached",
    "device_key",
    "host_dtype",
    "is_cuda",
    "library",
    "to_numpy",
    "torch_device",
]


def library(x) -> str:
    """The array library of ``x``: ``"numpy"``, ``"torch"``, ``"cupy"`` (``cupyx`` sparse
    matrices included) or the top-level module name of anything else. Imports nothing."""
    if isinstance(x, np.ndarray):
        return "numpy"
    mod = type(x).__module__.split(".")[0]
    return "cupy" if mod == "cupyx" else mod


def is_cuda(x) -> bool:
    """Whether ``x`` lives on a CUDA device (a CuPy array or a CUDA torch tensor)."""
    lib = library(x)
    return lib == "cupy" or (lib == "torch" and bool(getattr(x, "is_cuda", False)))


def device_key(x) -> tuple[str, str]:
    """``(library, device)`` of an array: the key of caches that hold one copy per device."""
    if isinstance(x, np.ndarray):
        return ("numpy", "cpu")
    from array_api_compat import device

    return (library(x), str(device(x)))


def array_key(x) -> tuple[str, str, str]:
    """``(library, device, dtype name)``: the key of caches that also depend on the dtype."""
    return (*device_key(x), host_dtype(x.dtype).name)


class DeviceCache:
    """Objects built once per array kind: ``cache.get(like, build)`` returns what
    ``build()`` made for the first array with ``like``'s key, and reuses it after.

    Parameters
    ----------
    with_dtype : bool, default True
        Key by :func:`array_key` (library, device, dtype); False: by :func:`device_key`.
    """

    def __init__(self, with_dtype: bool = True):
        self._key = array_key if with_dtype else device_key
        self._items: dict[tuple, Any] = {}

    def get(self, like, build: Callable[[], Any]) -> Any:
        key = self._key(like)
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = build()
        return item

    def __len__(self) -> int:
        return len(self._items)


def host_dtype(dtype) -> np.dtype:
    """The NumPy dtype of the same name as an array library's ``dtype`` (torch's
    ``torch.float32`` -> ``float32``); NumPy and CuPy dtypes are NumPy dtypes already.
    A floating dtype NumPy lacks (``bfloat16``) maps to float32."""
    if isinstance(dtype, np.dtype):
        return dtype
    name = str(dtype).rsplit(".", 1)[-1]
    try:
        return np.dtype(name)
    except TypeError:
        if "complex" in name:
            return np.dtype(np.complex128)
        if "float" in name:
            return np.dtype(np.float32)
        raise TypeError(f"unsupported array dtype {dtype}") from None


def describe(x) -> str:
    """What messages call the array: ``NumPy array``, ``torch Tensor``, ``cupy ndarray``."""
    if isinstance(x, np.ndarray):
        return "NumPy array"
    return f"{type(x).__module__.split('.')[0]} {type(x).__name__}"


def detached(x):
    """A torch tensor without its autograd history (in-place updates of a tensor that
    requires grad would fail); anything else unchanged."""
    if library(x) == "torch" and hasattr(x, "detach"):
        return x.detach()
    return x


def torch_device(x) -> str:
    """The torch name of ``x``'s device: ``"cpu"``, ``"cuda:0"``, ... (CuPy arrays too)."""
    if library(x) == "cupy":
        return f"cuda:{x.device.id}"
    return device_key(x)[1]


def asarray_like(a, like, dtype=None) -> Any:
    """``a`` (a NumPy array) as an array of ``like``'s namespace on ``like``'s device.

    ``dtype`` is a NumPy dtype (or None: keep ``a``'s); it is mapped to the namespace's
    dtype of the same name. NumPy ``like`` returns ``a`` itself (cast if needed).
    """
    a = np.asarray(a)
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    if isinstance(like, np.ndarray):
        return a
    from array_api_compat import array_namespace, device

    xp = array_namespace(like)
    # a copy: the result must not share memory with (possibly read-only) host arrays
    return xp.asarray(np.ascontiguousarray(a), device=device(like), copy=True)


def to_numpy(a) -> np.ndarray:
    """A host NumPy copy (or view, for CPU arrays) of any array-API array."""
    if isinstance(a, np.ndarray):
        return a
    lib = library(a)
    if lib == "torch":
        return a.detach().to("cpu").numpy()
    if lib == "cupy":
        return a.get()
    return np.from_dlpack(a)
