"""Studies B and C of :mod:`bench.spectra`: the shipped 2-D DCDM network, linearised, and the
Hessian of its training loss.

B. ``f`` = the network (float64 copy of ``dcdm-2d``, output masked to FLUID cells) at a
   unit-norm residual ``r``; ``J = df/dr`` by ``torch.func.jvp``. DCDM's step along ``f(r)``
   is, to first order, the step of a linear method with the non-symmetric "preconditioner"
   ``J``; the spectrum of ``J A`` (on the FLUID cells) is set against ``M^-1 A`` of the
   classical preconditioners. ``f`` is scale-free, so every spectrum is scaled to
   ``max |lambda| = 1``. Dense ``J`` (all columns) on a small grid; Arnoldi
   (``scipy.sparse.linalg.eigs`` on ``v -> J (A v)``) on the training-size grid.
C. The Hessian of ``dcdm_loss`` (energy mode, as trained) in the network's parameters on a
   small batch of training-style right-hand sides, at a seeded initialisation and at the
   shipped weights: top eigenvalues (Lanczos), trace (Hutch++), SLQ density.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import scipy.sparse.linalg as spla
import torch

import dcdm
from dcdm import spectrum
from dcdm.problems import rhs, scenes
from dcdm.solvers.precond import make_preconditioner
from dcdm.training.config import DataMix
from dcdm.training.data import build_dataset
from dcdm.training.loss import dcdm_loss
from dcdm.training.model import DCDMNet
from dcdm.training.torch_ops import GridOperator
from dcdm.training.weights import load_model

try:  # exported by dcdm.spectrum once the Hessian module lands there
    from dcdm.spectrum import hessian_operator, hessian_trace
except ImportError:  # pragma: no cover - the module exists, the export may not yet
    from dcdm.solvers.spectrum.hessian import hessian_operator, hessian_trace

log = logging.getLogger("bench.spectra")

CLASSICAL = ("jacobi", "mic0", "amg", "mg")


def build_preconditioner(M, A, seed: int = 0):
    """``M`` built once on ``A``. pyamg's set-up draws from NumPy's global RNG (the spectral
    radius estimate), so it is seeded here: the same hierarchy for every call."""
    if M is None:
        return None
    np.random.seed(seed)  # noqa: NPY002 - pyamg reads the legacy global state
    return make_preconditioner(M, A)


def fluid_matrix(A, idx: np.ndarray) -> np.ndarray:
    """``A`` on the FLUID cells ``idx`` as a dense array."""
    return A.to_csr()[idx][:, idx].toarray()


def dense_inverse(P, n: int, idx: np.ndarray) -> np.ndarray:
    """``M^-1`` on the FLUID cells, column by column (``len(idx)`` applications)."""
    out = np.zeros((idx.size, idx.size))
    e = np.zeros(n)
    for j, i in enumerate(idx):
        e[i] = 1.0
        out[:, j] = P.apply(e)[idx]
        e[i] = 0.0
    return out


def asymmetry(X: np.ndarray) -> float:
    """``||X - X^T||_F / ||X||_F``."""
    return float(np.linalg.norm(X - X.T) / np.linalg.norm(X))


class NetworkMap:
    """``f(r) = mask * net(r)`` and its Jacobian on the FLUID cells of ``grid`` (float64).

    Vectors are FLUID-cell vectors (length ``grid.n_fluid``); ``r`` is used as given (the
    solver feeds ``r / ||r||``: pass unit-norm residuals).
    """

    def __init__(self, net: DCDMNet, grid):
        self.net, self.grid = net, grid
        self.idx = np.flatnonzero(grid.fluid.ravel())
        self.mask = torch.from_numpy(grid.fluid.astype(np.float64))[None, None]
        self.jvps = 0

    def _field(self, v) -> torch.Tensor:
        full = torch.zeros(self.grid.size, dtype=torch.float64)
        full[torch.from_numpy(self.idx)] = torch.as_tensor(v, dtype=torch.float64)
        return full.view(1, 1, *self.grid.shape)

    def _fluid(self, y: torch.Tensor) -> np.ndarray:
        return y.reshape(-1, self.grid.size)[:, self.idx].detach().numpy().squeeze(0)

    def _fn(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.mask

    def __call__(self, r) -> np.ndarray:
        with torch.no_grad():
            return self._fluid(self._fn(self._field(r)))

    def jvp(self, r, v) -> np.ndarray:
        """``J(r) v``."""
        self.jvps += 1
        return self._fluid(torch.func.jvp(self._fn, (self._field(r),), (self._field(v),))[1])

    def jacobian(self, r, chunk: int = 64) -> np.ndarray:
        """Dense ``J(r)`` (``n_fluid`` JVPs, batched by ``vmap``)."""
        x, k = self._field(r), self.idx.size
        cols = []

        def one(v: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(self._fn, (x,), (v,))[1]

        for s in range(0, k, chunk):
            V = torch.zeros(min(chunk, k - s), 1, 1, self.grid.size, dtype=torch.float64)
            V[torch.arange(V.shape[0]), 0, 0, torch.from_numpy(self.idx[s:s + V.shape[0]])] = 1
            Y = torch.func.vmap(one)(V.view(V.shape[0], 1, 1, *self.grid.shape))
            cols.append(Y.reshape(V.shape[0], self.grid.size)[:, self.idx].detach().numpy())
        self.jvps += k
        return np.concatenate(cols).T

    def nonlinearity(self, r, ts, seed: int = 0) -> list[float]:
        """``||f(r + t v) - f(r) - t J v|| / ||t J v||`` for a random unit ``v``."""
        v = np.random.default_rng(seed).standard_normal(self.idx.size)
        v /= np.linalg.norm(v)
        f0, Jv = self(r), self.jvp(r, v)
        return [float(np.linalg.norm(self(r + t * v) - f0 - t * Jv) / np.linalg.norm(t * Jv))
                for t in ts]


def load_networks(seed: int = 0) -> dict[str, DCDMNet]:
    """The shipped 2-D network and a seeded fresh one of the same architecture, float64."""
    trained = load_model(dim=2)[0]
    torch.manual_seed(seed)
    nets = {"init": DCDMNet(trained.config), "trained": trained}
    for net in nets.values():
        net.double().eval()
    return nets


def residuals(grid, A, its=(0, 10), seed: int = 0) -> dict[str, np.ndarray]:
    """Unit-norm CG residuals (full-grid vectors) after ``its`` iterations, random and smooth b."""
    out = {}
    for kind in ("random", "smooth"):
        b = getattr(rhs, kind)(grid, seed=seed)
        kept = {0: b.copy()} if 0 in its else {}
        step = [0]

        def keep(xk, b=b, kept=kept, step=step):
            step[0] += 1
            if step[0] in its:
                kept[step[0]] = b - A.matvec(xk)

        if max(its) > 0:
            dcdm.cg(A, b, rtol=1e-14, maxiter=max(its), callback=keep)
        for it in its:
            out[f"{kind}-cg{it}"] = kept[it] / np.linalg.norm(kept[it])
    return out


def spectrum_stats(lam: np.ndarray) -> dict:
    """Summary of eigenvalues ``lam`` (complex) scaled to ``max |lambda| = 1``."""
    scale = 1.0 / np.abs(lam).max()
    z = lam * scale
    return {"scale": float(scale), "min_abs": float(np.abs(z).min()),
            "min_real": float(z.real.min()), "max_real": float(z.real.max()),
            "max_abs_imag": float(np.abs(z.imag).max()),
            "frac_negative_real": float(np.mean(z.real < 0)),
            "kappa_abs": float(np.abs(z).max() / np.abs(z).min())}


def dense_study(grid, net: DCDMNet, rs: dict, ts, seed: int) -> dict:
    """Dense ``J`` at each residual of ``rs`` on a small grid, with the classical ``M^-1 A``."""
    A = grid.laplacian()
    fmap = NetworkMap(net, grid)
    Af = fluid_matrix(A, fmap.idx)
    w, U = np.linalg.eigh(Af)
    Ah = (U * np.sqrt(w)) @ U.T  # A^(1/2) on the FLUID cells
    out = {"grid": list(grid.shape), "n_fluid": int(fmap.idx.size), "residuals": {},
           "classical": {}}
    Js = {}
    for name, r in rs.items():
        J = Js[name] = fmap.jacobian(r[fmap.idx])
        JA = J @ Af
        lam = np.linalg.eigvals(JA)
        st = spectrum_stats(lam)
        B = Ah @ J @ Ah  # J A in the A inner product: B = A^(1/2) (J A) A^(-1/2)
        mu = np.linalg.eigvalsh(0.5 * (B + B.T)) * st["scale"]
        st.update({
            "eigenvalues": (lam * st["scale"]).tolist(),
            "asym_J": asymmetry(J), "asym_JA": asymmetry(JA), "asym_A_inner": asymmetry(B),
            "fov_A_min": float(mu[0]), "fov_A_max": float(mu[-1]),
            "norm_B": float(np.linalg.norm(B, 2) * st["scale"]),
            "linearisation_error": dict(zip(map(str, ts), fmap.nonlinearity(r[fmap.idx], ts,
                                                                           seed), strict=True)),
            "f_dot_r": float(fmap(r[fmap.idx]) @ r[fmap.idx] /
                             np.linalg.norm(fmap(r[fmap.idx]))),
            "affine_offset": float(np.linalg.norm(fmap(r[fmap.idx]) - J @ r[fmap.idx]) /
                                   np.linalg.norm(fmap(r[fmap.idx]))),
        })
        st["one_step_bound"] = (math.sqrt(1 - (st["fov_A_min"] / st["norm_B"]) ** 2)
                                if st["fov_A_min"] > 0 else None)
        out["residuals"][name] = st
    names = list(Js)
    out["jacobian_change"] = {
        f"{a} vs {b}": float(np.linalg.norm(Js[a] / np.linalg.norm(Js[a]) -
                                            Js[b] / np.linalg.norm(Js[b])))
        for i, a in enumerate(names) for b in names[i + 1:]}
    for M in CLASSICAL:
        Minv = dense_inverse(build_preconditioner(M, A, seed), A.shape[0], fmap.idx)
        lam = np.sort(np.linalg.eigvals(Minv @ Af).real)
        MA = Minv @ Af
        out["classical"][M] = {"min": float(lam[0] / lam[-1]), "kappa": float(lam[-1] / lam[0]),
                               "eigenvalues": (lam / lam[-1]).tolist(),
                               "asym_M": asymmetry(Minv), "asym_MA": asymmetry(MA)}
    out["solves"] = solve_table(grid, net, rs, Js, seed)
    return out


def _linear_model(J: np.ndarray, idx: np.ndarray, shape):
    def model(r):
        q = np.zeros(math.prod(shape))
        q[idx] = J @ np.asarray(r, dtype=np.float64).reshape(-1)[idx]
        return q.reshape(shape)
    return model


def _jvp_model(fmap: NetworkMap, r0: np.ndarray):
    def model(r):
        q = np.zeros(fmap.grid.size)
        q[fmap.idx] = fmap.jvp(r0, np.asarray(r, dtype=np.float64).reshape(-1)[fmap.idx])
        return q.reshape(fmap.grid.shape)
    return model


def _a_norm_contraction(A, b, x_star: np.ndarray, **solve_args):
    """A solve with the A-norm error recorded at every iterate: ``(result, factors)`` with
    ``factors[k] = ||e_(k+1)||_A / ||e_k||_A``."""
    errs = []

    def energy(x):
        e = x_star - x
        errs.append(float(np.sqrt(max(e @ A.matvec(e), 0.0))))

    energy(np.zeros_like(b))
    res = dcdm.solve(A, b, callback=energy, **solve_args)
    errs = np.asarray(errs)
    return res, errs[1:] / np.maximum(errs[:-1], 1e-300)


def solve_table(grid, net: DCDMNet, rs: dict, Js: dict | None, seed: int,
                rtol: float = 1e-6) -> dict:
    """Iterations to ``rtol`` on the ``*-cg0`` right-hand sides of ``rs``: the paper's DCDM
    loop with the shipped network and with its linearisation frozen at ``b`` (A-norm error
    contraction per step recorded), and PCG with each classical preconditioner."""
    A = grid.laplacian()
    fmap = NetworkMap(net, grid)
    table = {}
    for name, b in rs.items():
        if not name.endswith("-cg0"):
            continue
        x_star = dcdm.cg(A, b, M="mg", rtol=1e-13, maxiter=500).x
        if Js is not None and name in Js:
            linear = _linear_model(Js[name], fmap.idx, grid.shape)
        else:
            linear = _jvp_model(fmap, b[fmap.idx])
        row, factors = {}, {}
        for label, model in (("dcdm-paper (network)", None),
                             ("dcdm-paper (J at b, frozen)", linear)):
            row[label], factors[label] = _a_norm_contraction(
                A, b, x_star, method="dcdm", variant="paper", model=model, rtol=rtol,
                maxiter=300)
        for M in CLASSICAL:
            row[f"pcg-{M}"] = dcdm.cg(A, b, M=build_preconditioner(M, A, seed), rtol=rtol,
                                      maxiter=2000)
        table[name.removesuffix("-cg0")] = entry = {}
        for k, v in row.items():
            its = max(int(v.iterations), 1)
            entry[k] = {"iterations": int(v.iterations), "converged": bool(v.converged),
                        "reason": v.reason.name,
                        "rate": float((v.residual_norm / np.linalg.norm(b)) ** (1 / its))}
            if k in factors:
                f = factors[k]
                entry[k].update({"a_norm_factor_first": float(f[0]),
                                 "a_norm_factor_median": float(np.median(f)),
                                 "a_norm_factor_geomean": float(np.exp(np.mean(np.log(
                                     np.maximum(f, 1e-300))))),
                                 "a_norm_factor_max": float(f.max())})
    return table


def arnoldi_study(grid, net: DCDMNet, rs: dict, ts, seed: int, k: int = 6) -> dict:
    """Arnoldi (ARPACK) extremes of ``J A`` on the FLUID cells at each residual of ``rs``."""
    A = grid.laplacian()
    fmap = NetworkMap(net, grid)
    Af = A.to_csr()[fmap.idx][:, fmap.idx]
    n = fmap.idx.size
    out = {"grid": list(grid.shape), "n_fluid": int(n), "residuals": {}}
    for name, r in rs.items():
        rf = r[fmap.idx]
        op = spla.LinearOperator((n, n), matvec=lambda v, rf=rf: fmap.jvp(rf, Af @ v),
                                 dtype=np.float64)
        start, t0 = fmap.jvps, time.perf_counter()
        v0 = np.random.default_rng(seed).standard_normal(n)
        lm, vecs = spla.eigs(op, k=k, which="LM", ncv=4 * k, tol=1e-6, v0=v0)
        # how oscillatory each mode is: v^H A v / v^H v (A's spectrum is [~0, 8])
        freq = np.real(np.einsum("ij,ij->j", vecs.conj(), Af @ vecs)) / np.einsum(
            "ij,ij->j", vecs.conj(), vecs).real
        try:
            sr = spla.eigs(op, k=2, which="SR", ncv=30, tol=1e-3, maxiter=20, v0=v0)[0]
            sr_ok = True
        except spla.ArpackNoConvergence as exc:
            sr, sr_ok = exc.eigenvalues, False
        scale = 1.0 / np.abs(lm).max()
        order = np.argsort(-np.abs(lm))
        out["residuals"][name] = {
            "max_abs_unscaled": float(1.0 / scale),
            "largest_magnitude": (lm[order] * scale).tolist(),
            "largest_magnitude_rayleigh_A": freq[order].tolist(),
            "smallest_real": (np.sort_complex(sr) * scale).tolist(), "smallest_real_converged":
            sr_ok, "jvps": fmap.jvps - start, "seconds": time.perf_counter() - t0,
            "linearisation_error": dict(zip(map(str, ts), fmap.nonlinearity(rf, ts, seed),
                                            strict=True))}
    out["solves"] = solve_table(grid, net, rs, None, seed)
    return out


def study_b(n_dense: int = 32, n_arnoldi: int = 64, its=(0, 10), seed: int = 0,
            scene_seed: int = 1001, ts=(1e-3, 1e-2, 1e-1, 0.5)) -> dict:
    """Study B (see the module docstring); ``n_arnoldi = 0`` skips the Arnoldi grid."""
    net = load_networks(seed)["trained"].requires_grad_(False)
    out = {"network": "dcdm-2d (float64 copy)", "cg_iterations": list(its),
           "normalisation": "every spectrum scaled to max |lambda| = 1", "ts": list(ts)}
    g = scenes.smoke((n_dense, n_dense), obstacles=max(1, n_dense // 10), seed=scene_seed)
    log.info("B: dense Jacobians on %s", g.shape)
    out["dense"] = dense_study(g, net, residuals(g, g.laplacian(), its, seed), ts, seed)
    if n_arnoldi:
        g = scenes.smoke((n_arnoldi, n_arnoldi), obstacles=8, seed=scene_seed)
        log.info("B: Arnoldi on %s", g.shape)
        out["arnoldi"] = arnoldi_study(g, net, residuals(g, g.laplacian(), its, seed), ts,
                                       seed)
    return out


# -- C: the Hessian of the training loss ----------------------------------------------------
def loss_batch(n: int, per_source: int = 1, seed: int = 0, scene_seed: int = 2024):
    """One scene, ``per_source`` samples of each training source (Ritz, random, smooth,
    residual) with their solutions, float64; and ``loss_fn(outputs, (b, e))``."""
    g = scenes.smoke((n, n), obstacles=max(2, n // 8), seed=scene_seed)
    mix = DataMix(ritz=per_source, random=per_source, smooth=per_source, residual=per_source,
                  lanczos_m=min(100, g.n_fluid))
    data = build_dataset([g], mix, seed=seed, solutions=True)
    op = GridOperator.from_grids([g])
    scene = data.scene

    def loss_fn(f, targets):
        b, e = targets
        return dcdm_loss(f, b, lambda x: op(x, scene), mode="energy", e=e)

    return data.b.double(), data.e.double(), loss_fn


def study_c(n: int = 32, per_source: int = 1, k: int = 5, lanczos_steps: int = 30,
            trace_matvecs: int = 30, slq_steps: int = 25, slq_probes: int = 5,
            seed: int = 0) -> tuple[dict, dict]:
    """Study C: ``(numbers, densities)`` at initialisation and at the shipped weights."""
    b, e, loss_fn = loss_batch(n, per_source, seed)
    out, densities = {"grid": [n, n], "batch": int(b.shape[0]), "loss": "energy"}, {}
    for name, net in load_networks(seed).items():
        t0 = time.perf_counter()
        H = hessian_operator(net, loss_fn, b, (b, e))
        with torch.enable_grad():
            loss = loss_fn(net(b), (b, e))
            grad = torch.autograd.grad(loss, list(net.parameters()))
        basis = spectrum.lanczos(H, lanczos_steps, seed=seed, reorthogonalize="full")
        theta, W = basis.ritz()
        bounds = np.abs(basis.beta_next * W[-1])
        top = np.argsort(-theta)[:k]
        trace = hessian_trace(H, probes=trace_matvecs, seed=seed)
        dens = spectrum.slq(H, steps=slq_steps, probes=slq_probes, seed=seed)
        lmax = float(theta.max())
        v = basis.ritz_vectors(int(np.argmax(theta)))
        mass = {nm: float(np.sum(c ** 2)) for nm, c in zip(
            H.names, np.split(np.ravel(v), np.cumsum([math.prod(s) for s in H.shapes])[:-1]),
            strict=True)}
        near = np.abs(dens.nodes) < 1e-2 * lmax
        out[name] = {
            "parameters": H.num_parameters, "loss_value": float(loss.detach()),
            "grad_norm": float(torch.cat([g.flatten() for g in grad]).norm()),
            "top": theta[top].tolist(), "top_bounds": bounds[top].tolist(),
            "lowest_ritz": float(theta.min()), "trace_hutchpp": float(trace.value),
            "trace_slq": dens.trace(), "trace_slq_std": dens.trace_std(),
            "top_share_of_trace": float(theta[top].sum() / trace.value),
            "slq_extremes": list(dens.extremes),
            "slq_mass_below_1e-2_lmax": float(dens.weights[near].sum()),
            "slq_mass_negative": float(dens.weights[dens.nodes < -1e-2 * lmax].sum()),
            "top_vector_mass": dict(sorted(mass.items(), key=lambda kv: -kv[1])[:4]),
            "hvps": H.n_products, "seconds": time.perf_counter() - t0}
        densities[name] = dens
        log.info("C: %s lambda_max %.3g trace %.3g (%d HVPs, %.0f s)", name, lmax,
                 trace.value, H.n_products, out[name]["seconds"])
    return out, densities


def plot_b(res: dict, path) -> None:
    """Eigenvalues of the normalised ``J A`` in the complex plane, and ``M^-1 A`` beside."""
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    dense = res["dense"]
    for name, st in dense["residuals"].items():
        z = np.asarray([complex(*c) if isinstance(c, list) else c for c in st["eigenvalues"]])
        ax.scatter(z.real, z.imag, s=4, label=f"J A, r = {name} ({dense['grid'][0]}^2)")
    for name, st in res.get("arnoldi", {}).get("residuals", {}).items():
        z = np.asarray([complex(*c) if isinstance(c, list) else c
                        for c in st["largest_magnitude"] + st["smallest_real"]])
        ax.scatter(z.real, z.imag, marker="x", s=30, label=f"Arnoldi {name} (64^2)")
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlabel="Re (scaled to max |lambda| = 1)", ylabel="Im",
           title="spectrum of J A (linearised network)")
    ax.legend(fontsize=6)
    for i, st in enumerate(dense["classical"].values()):
        lam = np.asarray(st["eigenvalues"])
        bx.scatter(lam, np.full(lam.size, i), s=3)
    for j, st in enumerate(dense["residuals"].values()):
        z = np.asarray([complex(*c) if isinstance(c, list) else c for c in st["eigenvalues"]])
        bx.scatter(np.abs(z), np.full(z.size, len(dense["classical"]) + j), s=3)
    labels = [f"M^-1 A {M}" for M in dense["classical"]] + [
        f"|lambda(J A)| {n}" for n in dense["residuals"]]
    bx.set_yticks(range(len(labels)), labels, fontsize=7)
    bx.set_xscale("log")
    bx.set(xlabel="eigenvalue / largest (log)", title=f"same grid ({dense['grid'][0]}^2), "
           "all eigenvalues")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_c(densities: dict, res: dict, path) -> None:
    """Both SLQ densities of the loss Hessian, eigenvalue axis scaled by each lambda_max."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (name, dens) in zip(axes, densities.items(), strict=True):
        dens.plot(ax=ax, label=f"{name}: lambda_max {res[name]['top'][0]:.3g}")
        for lam in res[name]["top"]:
            ax.axvline(lam, color="r", lw=0.5, ls=":")
        ax.set_title(f"loss Hessian, {name} ({res[name]['parameters']} parameters)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
