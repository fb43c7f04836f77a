"""The shipped DCDM weights, end to end (needs torch: the ``train`` extra)."""

import numpy as np
import pytest

from dcdm import Reason, solve
from dcdm.problems import rhs, scenes

pytest.importorskip("torch")
pytest.importorskip("safetensors")


def test_robust_dcdm_with_shipped_2d_weights_beats_cg_on_a_held_out_scene():
    g = scenes.smoke((48, 48), obstacles=5, seed=4242)  # not a training seed
    A = g.laplacian()
    b = rhs.random(g, seed=3)
    res = solve(A, b, method="dcdm", rtol=1e-6)
    assert res.reason == Reason.CONVERGED_RTOL
    assert np.linalg.norm(b - A.matvec(res.x)) <= 1e-6 * np.linalg.norm(b)
    cg = solve(A, b, method="cg", M=None, rtol=1e-6)
    assert res.iterations < cg.iterations
    assert res.stats["model"] == "dcdm-2d"
    assert res.stats["network_calls"] == res.iterations


def test_paper_dcdm_with_shipped_weights_reports_what_it_did():
    g = scenes.smoke((48, 48), obstacles=5, seed=4242)
    A = g.laplacian()
    b = rhs.random(g, seed=3)
    res = solve(A, b, method="dcdm", variant="paper", rtol=1e-6, maxiter=200)
    # documented in docs/MODEL_CARD.md: the network alone stalls; it must say so
    assert res.converged or res.reason in (Reason.STAGNATION, Reason.MAX_ITERATIONS)
    if not res.converged:
        assert res.residual_norm > 1e-6 * np.linalg.norm(b)


def test_no_3d_weights_is_a_clear_error():
    from dcdm.training import weights

    if (weights.WEIGHTS_DIR / "dcdm-3d.safetensors").exists():
        pytest.skip("3-D weights are shipped")
    g = scenes.smoke((8, 8, 8), obstacles=1, seed=1)
    with pytest.raises(FileNotFoundError, match="dcdm-3d"):
        solve(g.laplacian(), rhs.random(g), method="dcdm")
