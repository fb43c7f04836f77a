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


def _held_out():
    g = scenes.smoke((48, 48), obstacles=5, seed=4242)
    return g.laplacian(), rhs.random(g, seed=3)


@pytest.mark.parametrize("network_dtype", ["bfloat16", "float16"])
def test_reduced_precision_network_keeps_the_iteration_count(network_dtype):
    """bf16/fp16 forward pass, float64 iteration: converges to the same tolerance in about
    the same number of iterations as the float32 network."""
    A, b = _held_out()
    ref = solve(A, b, method="dcdm", rtol=1e-6)
    try:
        res = solve(A, b, method="dcdm", rtol=1e-6, network_dtype=network_dtype)
    except RuntimeError as err:  # a torch build without CPU kernels for this format
        if "not implemented" in str(err):
            pytest.skip(f"{network_dtype} convolutions on the CPU: {err}")
        raise
    assert res.reason == Reason.CONVERGED_RTOL
    assert res.x.dtype == np.float64
    assert np.linalg.norm(b - A.matvec(res.x)) <= 1e-6 * np.linalg.norm(b)
    assert abs(res.iterations - ref.iterations) <= 3, (res.iterations, ref.iterations)
    assert res.stats["network_dtype"] == network_dtype
    assert ref.stats["network_dtype"] == "float32"


def test_network_dtype_reaches_the_neural_preconditioner():
    A, b = _held_out()
    # FCG with the network alone need not converge (docs/MODEL_CARD.md): only the plumbing
    res = solve(A, b, method="fcg", M="neural", network_dtype="bfloat16", rtol=1e-6,
                maxiter=5)
    assert res.stats["network_dtype"] == "bfloat16" and res.stats["network_calls"] >= 1


@pytest.mark.parametrize("bad", ["float64", "int8", "bf16", 16])
def test_a_bad_network_dtype_is_a_clear_error(bad):
    A, b = _held_out()
    with pytest.raises(ValueError, match=r"network_dtype must be one of \('float32', "
                                         r"'bfloat16', 'float16'\)"):
        solve(A, b, method="dcdm", network_dtype=bad)
    with pytest.raises(ValueError, match="network_dtype must be one of"):
        solve(A, b, method="fcg", M="neural", network_dtype=bad)


def test_network_dtype_needs_a_network():
    A, b = _held_out()
    with pytest.raises(ValueError, match="network_dtype='bfloat16' applies to a network"):
        solve(A, b, method="dcdm", model=lambda r: r, network_dtype="bfloat16")
