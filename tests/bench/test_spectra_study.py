"""The spectra study (bench/spectra.py, bench/spectra_dcdm.py) on tiny sizes: the JSON's
structure and facts that must hold whatever the sizes."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")
pytest.importorskip("matplotlib")

from bench import spectra  # noqa: E402
from bench import spectra_dcdm as net_studies  # noqa: E402
from dcdm.problems import scenes  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("spectra")
    spectra.run(out, only=("a", "d"), n=16, n3=0, widths=(4, 8), ks=(2, 3), mlp_steps=30)
    return out, json.loads((out / "spectra.json").read_text())


def test_run_writes_json_and_plots(written):
    out, res = written
    assert {"machine", "seed", "seconds", "A", "D"} <= set(res)
    assert set(res["seconds"]) == {"A", "D"}
    for name in ("a-slq-16x16.png", "d-sagun.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_preconditioned_operators(written):
    rows = written[1]["A"]["16x16"]["rows"]
    assert list(rows) == ["none", "jacobi", "ic0", "mic0", "amg", "mg"]
    for row in rows.values():
        assert 0 < row["lowest"] <= row["highest"]
        assert row["kappa_from_cg_matvecs"] == 0
        # the free estimate is a Ritz ratio: it cannot exceed the Lanczos kappa by much
        assert row["kappa_from_cg"] <= row["kappa"] * (1 + 1e-6)
        assert row["cg_converged"] and row["cg_iterations"] > 0
        assert isinstance(row["predicted_with_b"], int)
    assert rows["mg"]["kappa"] < rows["jacobi"]["kappa"]
    assert rows["mic0"]["kappa"] < rows["jacobi"]["kappa"]


def test_sagun_numbers(written):
    d = written[1]["D"]
    assert set(d["runs"]) == {"w4-k2", "w8-k2", "w4-k3", "w8-k3"}
    for run in d["runs"].values():
        assert 0.0 <= run["bulk_fraction"] <= 1.0
        assert 0.0 <= run["softmax_null_fraction"] <= run["bulk_fraction"]
        assert len(run["top"]) == run["k"] + 3
        assert run["top"] == sorted(run["top"], reverse=True)
        assert 1 <= run["largest_gap_after"] <= 2 * run["k"]
        # the package's Lanczos agrees with the dense Hessian
        assert run["lanczos_vs_dense_rel_err"] < 1e-8
    assert set(d["variation"]["lambda_max"]["across_k"]) == {"4", "8"}


def test_hessian_summary_on_a_known_spectrum():
    ev = np.array([10.0, 5.0, 1.0, 0.6, 0.3, 1e-4, 0.0, -1e-4])
    s = spectra.hessian_summary(ev, k=2)
    assert s["bulk_fraction"] == pytest.approx(3 / 8)
    assert s["largest_gap_after"] == 2 and s["largest_gap_ratio"] == pytest.approx(5.0)
    assert s["above_tenth_of_max"] == 2


def test_jsonable():
    got = spectra.jsonable({"a": np.float64(math.inf), "b": 1 + 2j, "c": np.arange(2),
                            1: (np.bool_(True), np.nan)})
    assert got == {"a": None, "b": [1.0, 2.0], "c": [0, 1], "1": [True, None]}


@pytest.fixture(scope="module")
def tiny_grid():
    return scenes.smoke((16, 16), obstacles=2, seed=3)


@pytest.fixture(scope="module")
def trained():
    return net_studies.load_networks(0)["trained"].requires_grad_(False)


def test_jacobian_matches_finite_differences_and_arnoldi(tiny_grid, trained):
    import scipy.sparse.linalg as spla

    fmap = net_studies.NetworkMap(trained, tiny_grid)
    r = net_studies.residuals(tiny_grid, tiny_grid.laplacian(), (0,))["random-cg0"][fmap.idx]
    J = fmap.jacobian(r, chunk=50)
    v = np.random.default_rng(1).standard_normal(r.size)
    fd = (fmap(r + 1e-6 * v) - fmap(r - 1e-6 * v)) / 2e-6
    assert np.linalg.norm(fd - J @ v) <= 1e-5 * np.linalg.norm(J @ v)
    Af = net_studies.fluid_matrix(tiny_grid.laplacian(), fmap.idx)
    dense = np.linalg.eigvals(J @ Af)
    op = spla.LinearOperator(J.shape, matvec=lambda x: fmap.jvp(r, Af @ x), dtype=np.float64)
    lm = spla.eigs(op, k=2, which="LM", tol=1e-10)[0]
    assert np.abs(lm).max() == pytest.approx(np.abs(dense).max(), rel=1e-6)


def test_linearised_network_study(trained, monkeypatch):
    monkeypatch.setattr(net_studies, "load_networks", lambda seed: {"trained": trained})
    res = net_studies.study_b(n_dense=16, n_arnoldi=0, its=(0, 3), ts=(1e-3, 0.1))
    dense = res["dense"]
    assert set(dense["residuals"]) == {"random-cg0", "random-cg3", "smooth-cg0", "smooth-cg3"}
    for st in dense["residuals"].values():
        assert all(math.isfinite(e) and e >= 0 for e in st["linearisation_error"].values())
        assert max(abs(complex(z)) for z in st["eigenvalues"]) == pytest.approx(1.0)
        assert 0 <= st["asym_J"] < 2 and st["fov_A_min"] <= st["fov_A_max"]
    for st in dense["classical"].values():  # SPD preconditioners: symmetric M^-1
        assert st["asym_M"] < 1e-10 and 0 < st["min"] <= 1.0
    assert dense["classical"]["mg"]["kappa"] < dense["classical"]["jacobi"]["kappa"]
    solves = dense["solves"]["random"]
    assert solves["pcg-mg"]["converged"]
    assert 0 < solves["dcdm-paper (network)"]["a_norm_factor_first"] < 1


def test_loss_hessian_study():
    res, dens = net_studies.study_c(n=16, k=2, lanczos_steps=6, trace_matvecs=6, slq_steps=4,
                                    slq_probes=2)
    assert set(dens) == {"init", "trained"} and res["batch"] == 4
    for name in ("init", "trained"):
        st = res[name]
        assert st["parameters"] == 69777 and st["hvps"] > 0
        assert st["top"] == sorted(st["top"], reverse=True)
        assert all(math.isfinite(x) for x in (st["trace_hutchpp"], st["loss_value"],
                                              st["grad_norm"]))
        assert 0.0 <= st["slq_mass_below_1e-2_lmax"] <= 1.0 + 1e-12
