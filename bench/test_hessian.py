"""Network Hessian spectra: products per eigenvalue, and the memory of a Hessian-vector product.

``test_hessian_top20``: the 20 largest Hessian eigenvalues of an ~84k-parameter tanh MLP
(64-256-256-10, float32) on a generated 10-class blob data set (2,048 samples), trained by
100 Adam steps, with :func:`dcdm.spectrum.hessian_eigenvalues` to ``tol`` 1e-3: the
products used are recorded (target: at most 60).

``test_hvp_memory``: the bytes of the distinct tensors autograd saves for backward during
a Hessian-vector product (forward, first backward with ``create_graph``, second backward)
against a gradient's (forward), on 16,384 samples so that activations dominate: target at
most 3x. The resident set size (``ru_maxrss`` in fresh processes) was tried first and
varied by 2.5x between identical runs on this machine, so the graphs' saved tensors are
counted instead: deterministic, and what grows with the batch.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import MEDIANS, RATIOS, is_smoke, record
from .conftest import cpu_only as _cpu_only

torch = pytest.importorskip("torch")

SETUP = """
import numpy as np, torch
torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)
k, d, n = 10, 64, {n}
centers = rng.uniform(-1.5, 1.5, (k, d))
y = rng.integers(0, k, n)
x = torch.tensor(centers[y] + rng.standard_normal((n, d)), dtype=torch.float32)
y = torch.tensor(y)
model = torch.nn.Sequential(torch.nn.Linear(d, {width}), torch.nn.Tanh(),
                            torch.nn.Linear({width}, {width}), torch.nn.Tanh(),
                            torch.nn.Linear({width}, k))
loss_fn = torch.nn.functional.cross_entropy
"""


def _problem(n: int, width: int):
    scope: dict = {}
    exec(SETUP.format(n=n, width=width), scope)  # the same set-up the memory probes run
    return scope["model"], scope["loss_fn"], scope["x"], scope["y"]


def test_hessian_top20(benchmark, bench_device, request):
    _cpu_only(bench_device)
    from dcdm import spectrum

    width = 64 if is_smoke(request.config) else 256
    model, loss_fn, x, y = _problem(2048, width)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(100):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    params = sum(p.numel() for p in model.parameters())
    out = []

    def run():
        out[:] = [spectrum.hessian_eigenvalues(model, loss_fn, x, y, k=20, tol=1e-3)]

    benchmark.pedantic(run, rounds=1, iterations=1)
    eig = out[0]
    record(benchmark, f"hessian-top20-mlp{width}", kind="spectrum", method="lanczos",
           preconditioner="none", problem="mlp-blobs", dtype="float32", parameters=params,
           hvps=eig.n_products, converged=eig.converged, top=eig.values[:3].tolist(),
           twentieth=float(eig.values[19]))
    assert eig.converged


class SavedBytes:
    """Bytes of the distinct tensors autograd saves for backward inside the ``with`` block
    (a deterministic measure of a graph's memory, unlike the resident set size)."""

    def __enter__(self):
        self.bytes, self._seen = 0, set()

        def pack(t):
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if key not in self._seen:
                self._seen.add(key)
                self.bytes += key[1]
            return t

        self._hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


def test_hvp_memory(benchmark, bench_device, request):
    _cpu_only(bench_device)
    from dcdm.spectrum import hessian_operator

    n = 2048 if is_smoke(request.config) else 16384
    model, loss_fn, x, y = _problem(n, 256)
    with SavedBytes() as grad:
        loss = loss_fn(model(x), y)
    torch.autograd.grad(loss, list(model.parameters()))
    H = hessian_operator(model, loss_fn, x, y)
    v = np.random.default_rng(1).standard_normal(H.shape[0])
    hvp = SavedBytes()

    def run():
        with hvp:
            H.matvec(v)

    benchmark.pedantic(run, rounds=1, iterations=1)
    MEDIANS["hvp-mem"], MEDIANS["grad-mem"] = float(hvp.bytes), float(grad.bytes)
    record(benchmark, f"hvp-memory-{n}", kind="spectrum", method="hvp", problem="mlp-blobs",
           dtype="float32", grad_saved_bytes=grad.bytes, hvp_saved_bytes=hvp.bytes,
           ratio=hvp.bytes / grad.bytes)
    RATIOS["HVP / gradient saved-tensor memory"] = (
        "hvp-mem", "grad-mem", 1.0, "bytes autograd saves for an HVP (double backward) over a "
        "gradient's; target <= 3")
    assert grad.bytes > 0 and hvp.bytes > 0
