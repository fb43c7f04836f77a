"""The trained network as a NumPy function: ``q = Network(...)(r)``, fast on the CPU.

Speed (``reference/perf-notes.md``): eager PyTorch on this CPU is 3-23x slower
than it needs to be for this network, because small batch-1 convolutions miss
oneDNN. On the CPU :class:`Network` therefore, per input shape, converts a copy
of the model to ``channels_last`` (``channels_last_3d``), traces it with
``torch.jit.trace``, freezes it (weights become constants, conv+ReLU fused) and
runs ``torch.jit.optimize_for_inference`` (oneDNN convolutions, reused
buffers). The compiled function is cached per shape; if tracing fails the
network runs eagerly and a warning is logged. On CUDA it runs eagerly in
``channels_last`` (cuDNN is already fast).

Threads: the network is 95-99% of a DCDM iteration and the solver's NumPy/Numba
work runs between network calls, never at the same time, so torch may use every
core: its default (``torch.get_num_threads()``: the physical cores, 2 here) is
the right choice on an otherwise idle machine, and :class:`Network` leaves it
alone unless ``threads`` is given (which calls the process-global
``torch.set_num_threads``). Use ``threads=1`` when other processes compete for
the cores: OpenMP threads that get descheduled spin at every barrier. Measured
on this 2-core machine with other jobs running (load ~4.5): traced 64^3
forward 324 ms on 1 thread vs 1252 ms on 2; 32^3 68 vs 502 ms; a 64^2 training
step 1.7 s on 2 threads vs 7 ms on 1. Idle, 2 threads were 1.7x faster than 1
for training steps.

The network's output is only defined up to scale (and, with the paper's loss,
sign); DCDM line-searches along it. ``rescale=True`` multiplies it by
``||r||`` so that the map is positively homogeneous like ``A^{-1}``.

Precision: ``dtype="bfloat16"`` or ``"float16"`` runs the forward pass (weights
and activations) in that format, for tensor-core convolutions on a GPU. Only the
network is reduced: the residual is normalised in its own precision, cast down
for the network, and the direction is cast back up to the residual's dtype, so
the solver's iteration stays in float32/float64 (DCDM line-searches along
whatever direction it gets, so a rounded direction costs iterations, never
correctness). bfloat16 keeps float32's range; float16 has 10 mantissa bits but
a smallest normal number of 6e-5, so the entries of a unit-norm residual of a
very large grid lose relative precision there. Both run on the CPU too (torch
2.3+), but there they are for testing, not speed.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .model import DCDMNet

__all__ = ["DTYPES", "Network", "check_dtype"]

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
"""The forward-pass precisions :class:`Network` offers, by name."""


def check_dtype(dtype, name: str = "dtype") -> str:
    """The name (a key of :data:`DTYPES`) of a network precision given by name or as a
    ``torch.dtype``; ``None`` means ``"float32"``. Anything else is a ``ValueError`` that
    names the argument ``name``.

    Examples
    --------
    >>> check_dtype(torch.bfloat16), check_dtype(None), check_dtype("float16")
    ('bfloat16', 'float32', 'float16')
    """
    if dtype is None:
        return "float32"
    key = str(dtype).removeprefix("torch.") if isinstance(dtype, (str, torch.dtype)) else None
    if key not in DTYPES:
        raise ValueError(
            f"{name} must be one of {tuple(DTYPES)} (the precision of the network's forward "
            f"pass; the solver's vectors keep theirs), got {dtype!r}"
        )
    return key


def _dims_error(weights_dim: int, grid_dim: int, what: str = "") -> ValueError:
    return ValueError(
        f"{weights_dim}-D weights on a {grid_dim}-D grid{what}: the network's dimensionality "
        f"must match the grid's; load the {grid_dim}-D weights (e.g. "
        f"load_network(dim={grid_dim})) or a checkpoint trained with dim={grid_dim}"
    )


class Network:
    """A :class:`~dcdm.training.model.DCDMNet` wrapped for the solvers: NumPy in, NumPy out.

    Parameters
    ----------
    model : DCDMNet
        The trained network; a copy in ``dtype`` is taken (later training does not
        change this object).
    meta : mapping, optional
        The weights' meta (see :mod:`dcdm.training.weights`).
    name : str, optional
        Shown in solver stats (default: ``meta["name"]`` or ``"dcdm-<dim>d"``).
    compile : bool, default True
        Use the traced/frozen/oneDNN path on the CPU (eager otherwise).
    threads : int, optional
        Call ``torch.set_num_threads(threads)`` (process-wide); see the module docstring.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
    rescale : bool, default False
        Return ``||r|| f(r / ||r||)`` instead of ``f(r / ||r||)``.
    dtype : {"float32", "bfloat16", "float16"} or torch.dtype, default "float32"
        Precision of the forward pass (see the module docstring); inputs and outputs
        keep the caller's dtype.

    Attributes
    ----------
    network_seconds : float
        Seconds spent in the network (normalisation, torch and copies back),
        summed over calls; compilation is counted in ``compile_seconds`` instead.
    calls : int
        Number of calls.

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.problems import scenes
    >>> from dcdm.training.model import DCDMNet
    >>> g = scenes.smoke((12, 12), obstacles=1, seed=0)
    >>> net = Network(DCDMNet(dim=2), compile=False)
    >>> r = g.mask(np.random.default_rng(0).standard_normal(g.shape)).ravel()
    >>> q = net(r, g)
    >>> q.shape, q.dtype, bool(np.all(q[~g.fluid.ravel()] == 0)), net.calls
    ((144,), dtype('float64'), True, 1)
    """

    def __init__(
        self,
        model: DCDMNet,
        meta: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        compile: bool = True,
        threads: int | None = None,
        device: str = "cpu",
        rescale: bool = False,
        dtype: str | torch.dtype = "float32",
    ):
        self.dtype_name = check_dtype(dtype)
        self.dtype = DTYPES[self.dtype_name]
        if not isinstance(model, DCDMNet):
            raise TypeError(f"model must be a DCDMNet, got {type(model).__name__}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValueError(f"threads must be a positive integer, got {threads!r}")
            torch.set_num_threads(threads)
        master = copy.deepcopy(model).float().eval()
        # a reduced-precision network keeps its float32 weights (on the CPU), so that
        # to(dtype=...) converts from them, not from the rounded ones
        self._master = None if self.dtype == torch.float32 else master
        self.model = (master if self._master is None else copy.deepcopy(master)).to(
            device=self.device, dtype=self.dtype)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.config = self.model.config
        self.meta = dict(meta or {})
        self.name = name or self.meta.get("name") or f"dcdm-{self.config.dim}d"
        self.compile = bool(compile)
        self.rescale = bool(rescale)
        self.network_seconds = 0.0
        self.compile_seconds = 0.0
        self.calls = 0
        self._cache: dict[tuple[int, ...], Any] = {}

    @property
    def dim(self) -> int:
        return self.config.dim

    def __repr__(self) -> str:
        return (f"Network({self.name!r}, dim={self.dim}, params={self.model.param_count()}, "
                f"device={self.device.type}, dtype={self.dtype_name}, compile={self.compile})")

    def reset_timers(self) -> None:
        """Zero ``network_seconds`` and ``calls``."""
        self.network_seconds = 0.0
        self.calls = 0

    # -- compilation ------------------------------------------------------------------------
    def _memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.dim == 2 else torch.channels_last_3d

    def _function(self, shape: tuple[int, ...]):
        fn = self._cache.get(shape)
        if fn is None:
            t = time.perf_counter()
            fn = self._build(shape)
            self.compile_seconds += time.perf_counter() - t
            self._cache[shape] = fn
        return fn

    def _build(self, shape: tuple[int, ...]):
        fmt = self._memory_format()
        model = copy.deepcopy(self.model).to(memory_format=fmt)
        example = torch.zeros((1, 1, *shape), device=self.device, dtype=self.dtype).contiguous(
            memory_format=fmt)
        if not self.compile or self.device.type != "cpu":
            return model
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # torch.jit is deprecated in favour of torch.compile, which needs a C++
                # toolchain at run time; the traced path is what the perf notes measured
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(model, example, check_trace=False)
                traced = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
                for _ in range(2):  # the first runs of a frozen graph specialise it
                    traced(example)
            return traced
        except Exception as exc:  # any tracing failure: correct but slower eager path
            log.warning("torch.jit tracing of %s for shape %s failed (%s: %s); running eagerly",
                        self.name, shape, type(exc).__name__, exc)
            return model

    def warmup(self, shape) -> None:
        """Compile for a grid ``shape`` now (so the first solve is not billed for it)."""
        self._function(tuple(int(n) for n in shape))

    # -- evaluation -------------------------------------------------------------------------
    def _shape_and_mask(self, r: np.ndarray, grid) -> tuple[tuple[int, ...], np.ndarray | None]:
        fluid = None
        if grid is None:
            if r.ndim != self.dim:
                if r.ndim in (2, 3):
                    raise _dims_error(self.dim, r.ndim)
                raise ValueError(
                    f"r has shape {r.shape}: give a {self.dim}-D grid-shaped residual, or a "
                    "flat one together with its grid (or shape)"
                )
            return tuple(r.shape), None
        if hasattr(grid, "flags"):
            shape, fluid = tuple(grid.shape), np.asarray(grid.fluid)
        else:
            shape = tuple(int(n) for n in grid)
        if len(shape) != self.dim:
            raise _dims_error(self.dim, len(shape))
        if math.prod(r.shape) != math.prod(shape) or (r.ndim != 1 and tuple(r.shape) != shape):
            raise ValueError(f"r has shape {r.shape}, which does not fit the grid {shape}")
        return shape, fluid

    def to(self, device=None, *, dtype=None) -> Network:
        """This network on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a
        ``torch.device``; default: where it is) with forward-pass precision ``dtype``
        (default: its own): ``self`` if nothing changes, else a copy (the weights are
        moved or converted once, here)."""
        name = self.dtype_name if dtype is None else check_dtype(dtype)
        device = self.device if device is None else torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        here = self.device
        if here.type == "cuda" and here.index is None:
            here = torch.device("cuda", torch.cuda.current_device())
        if here == device and name == self.dtype_name:
            return self
        source = self.model if self._master is None else self._master
        return Network(source, self.meta, name=self.name, compile=self.compile,
                       device=str(device), rescale=self.rescale, dtype=name)

    def __call__(self, r, grid=None):
        """The network's direction for residual ``r``.

        Parameters
        ----------
        r : ndarray, torch.Tensor or CuPy array, float32 or float64
            Grid-shaped, or flat (C-order ravel) together with ``grid``. A torch tensor
            stays in torch (moved to the network's device only if it is elsewhere); a
            CuPy array is viewed as a tensor through DLPack, without a copy.
        grid : Grid or tuple of int, optional
            The grid (its non-FLUID cells of the output are zeroed) or its shape.

        Returns
        -------
        ndarray, torch.Tensor or CuPy array
            ``f(r / ||r||)`` (times ``||r||`` with ``rescale``), same kind, device, shape
            and dtype as ``r``; all zeros if ``r`` is zero.
        """
        mod = type(r).__module__
        if mod.startswith("torch"):
            return self._call_tensor(r, grid)
        if mod.startswith("cupy"):
            import cupy

            return cupy.from_dlpack(self._call_tensor(torch.from_dlpack(r), grid))
        r = np.asarray(r)
        if r.dtype not in (np.float32, np.float64):
            raise TypeError(f"r must be float32 or float64, got {r.dtype}")
        shape, fluid = self._shape_and_mask(r, grid)
        fn = self._function(shape)
        t = time.perf_counter()
        norm = float(np.linalg.norm(r))
        if norm == 0.0:
            out = np.zeros_like(r)
        else:
            x = torch.from_numpy((r.reshape(shape) / norm).astype(np.float32, copy=False))
            x = x.view(1, 1, *shape).to(device=self.device, dtype=self.dtype).contiguous(
                memory_format=self._memory_format())
            with torch.inference_mode():
                y = fn(x)
            q = y.reshape(shape).to(device="cpu", dtype=torch.float32).numpy()
            if self.rescale:
                q = q * np.float32(norm)
            if fluid is not None:
                q = np.where(fluid, q, 0)
            # always a fresh array: a float32 q may alias a buffer torch reuses
            out = np.array(q, dtype=r.dtype).reshape(r.shape)
        self.network_seconds += time.perf_counter() - t
        self.calls += 1
        return out

    def _call_tensor(self, r: torch.Tensor, grid) -> torch.Tensor:
        """:meth:`__call__` for a torch tensor: everything stays on its device (one scalar,
        the norm, crosses to the host to catch a zero residual)."""
        if r.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"r must be float32 or float64, got {r.dtype}")
        shape, fluid = self._shape_and_mask(r, grid)
        fn = self._function(shape)
        t = time.perf_counter()
        norm = torch.linalg.vector_norm(r)
        if float(norm) == 0.0:
            out = torch.zeros_like(r)
        else:
            x = (r.reshape(shape) / norm).to(device=self.device, dtype=self.dtype)
            x = x.view(1, 1, *shape).contiguous(memory_format=self._memory_format())
            with torch.inference_mode():
                y = fn(x)
            q = y.reshape(shape).to(device=r.device, dtype=torch.float32)
            if self.rescale:
                q = q * norm.to(torch.float32)
            if fluid is not None:
                mask = grid.kernel_arrays(q)[2]  # the grid's cached copy on q's device
                q = torch.where(mask, q, torch.zeros((), dtype=q.dtype, device=q.device))
            # always a fresh tensor: q may alias a buffer the traced graph reuses
            out = q.to(dtype=r.dtype, copy=True).reshape(r.shape)
        self.network_seconds += time.perf_counter() - t
        self.calls += 1
        return out
