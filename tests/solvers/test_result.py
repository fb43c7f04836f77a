import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from dcdm import Reason, SolveResult, scipy_cg, solve
from dcdm.problems import gallery


def test_reason_sign_convention_and_messages():
    for r in Reason:
        assert r.converged == (r > 0)
        assert isinstance(r.message, str) and len(r.message) > 10
    assert Reason.CONVERGED_RTOL == 2 and Reason.INDEFINITE_OPERATOR == -10  # PETSc's numbers


def test_result_is_frozen_and_read_only():
    A, b = gallery.poisson((8, 8))
    res = solve(A, b, rtol=1e-8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.iterations = 3
    with pytest.raises(TypeError):
        res.stats["method"] = "x"
    with pytest.raises(ValueError):
        res.residual_history[0] = 1.0
    assert res.stats["method"] == "cg"
    assert res.stats["tolerance"] == pytest.approx(1e-8 * np.linalg.norm(b))
    assert "CONVERGED_RTOL" in repr(res)
    assert isinstance(res, SolveResult)


def test_scipy_cg_info_semantics():
    A, b = gallery.poisson((16, 16))
    C = A.to_csr()
    x, info = scipy_cg(C, b, rtol=1e-8)
    assert info == 0 and np.linalg.norm(b - C @ x) <= 1e-8 * np.linalg.norm(b)
    x, info = scipy_cg(C, b, rtol=1e-12, maxiter=4)
    assert info == 4
    x, info = scipy_cg(-C, b)  # negative definite: solved as -C x = -b, as scipy does
    assert info == 0 and np.linalg.norm(b + C @ x) <= 1e-5 * np.linalg.norm(b)
    x, info = scipy_cg(C - 4 * sp.eye_array(C.shape[0]), b)  # indefinite: breakdown
    assert info < 0
