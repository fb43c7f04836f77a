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


def test_paper_dcdm_converges_at_its_training_size():
    """dcdm-2d (energy loss, 64^2): the paper's loop alone reaches 1e-6 on a held-out scene
    at the training size in far fewer iterations than CG (docs/MODEL_CARD.md)."""
    g = scenes.smoke((64, 64), obstacles=8, seed=1001)
    A = g.laplacian()
    b = rhs.random(g, seed=1001)
    res = solve(A, b, method="dcdm", variant="paper", rtol=1e-6, maxiter=200)
    assert res.reason == Reason.CONVERGED_RTOL
    assert np.linalg.norm(b - A.matvec(res.x)) <= 1e-6 * np.linalg.norm(b)
    assert res.iterations < solve(A, b, method="cg", M=None, rtol=1e-6).iterations / 5


def test_paper_dcdm_where_it_stalls_says_stagnation():
    """At 4x the training size the 2-D network's directions stop reducing the residual
    (docs/MODEL_CARD.md): the paper loop must end in STAGNATION, not a false success."""
    g = scenes.smoke((256, 256), obstacles=8, seed=1002)
    A = g.laplacian()
    b = rhs.random(g, seed=1002)
    res = solve(A, b, method="dcdm", variant="paper", rtol=1e-6, maxiter=200)
    assert res.reason == Reason.STAGNATION and not res.converged
    assert res.residual_norm > 1e-6 * np.linalg.norm(b)
    assert res.residual_norm == pytest.approx(np.linalg.norm(b - A.matvec(res.x)), rel=1e-6)


def test_shipped_3d_weights_on_a_held_out_scene():
    g = scenes.smoke((24, 24, 24), obstacles=4, seed=4242)  # not a training seed
    A = g.laplacian()
    b = rhs.smooth(g, seed=5)
    cg = solve(A, b, method="cg", M=None, rtol=1e-6)
    for variant in ("robust", "paper"):
        res = solve(A, b, method="dcdm", variant=variant, rtol=1e-6, maxiter=200)
        assert res.reason == Reason.CONVERGED_RTOL, variant
        assert np.linalg.norm(b - A.matvec(res.x)) <= 1e-6 * np.linalg.norm(b)
        assert res.iterations < cg.iterations, variant
        assert res.stats["model"] == "dcdm-3d"


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
