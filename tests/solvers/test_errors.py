"""Every bad input raises at once, naming the argument; nothing is modified."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from dcdm import solve
from dcdm.problems import gallery
from dcdm.solvers import as_operator, fcg

A1 = sp.diags_array([-np.ones(4), 2 * np.ones(5), -np.ones(4)], offsets=[-1, 0, 1]).tocsr()
B1 = np.ones(5)


def with_nan(M):
    M = M.copy()
    M.data[0] = np.nan
    return M


CASES = [
    # (kwargs for solve, exception, message regex)
    (dict(A=np.ones((3, 4)), b=np.ones(3)), ValueError, "A must be square, got shape \\(3, 4\\)"),
    (dict(A=np.ones(3), b=np.ones(3)), ValueError, "A must be 2-D"),
    (dict(A=A1, b=np.ones(4)), ValueError, "b has shape \\(4,\\) but A has shape \\(5, 5\\)"),
    (dict(A=A1, b=np.ones((5, 2))), ValueError, "b must be 1-D with 5 entries"),
    (dict(A=A1, b=B1, x0=np.ones(3)), ValueError, "x0 has shape \\(3,\\)"),
    (dict(A=with_nan(A1), b=B1), ValueError, "A contains NaN or Inf"),
    (dict(A=np.array([[1.0, np.inf], [np.inf, 1.0]]), b=np.ones(2)), ValueError,
     "A contains NaN or Inf"),
    (dict(A=A1, b=np.array([1, np.nan, 1, 1, 1])), ValueError, "b contains NaN or Inf"),
    (dict(A=A1, b=B1, x0=np.array([0, 0, np.inf, 0, 0])), ValueError, "x0 contains NaN or Inf"),
    (dict(A=A1.astype(complex), b=B1), TypeError, "A has complex dtype"),
    (dict(A=A1, b=B1 + 1j), TypeError, "b has complex dtype"),
    (dict(A=A1, b=B1, x0=B1 + 0j), TypeError, "x0 has complex dtype"),
    (dict(A=A1, b=np.array(["a"] * 5)), TypeError, "b must hold real numbers"),
    (dict(A=A1, b=B1, rtol=-1e-3), ValueError, "rtol must be a number >= 0"),
    (dict(A=A1, b=B1, atol=-1.0), ValueError, "atol must be a number >= 0"),
    (dict(A=A1, b=B1, rtol=float("nan")), ValueError, "rtol must be a number >= 0"),
    (dict(A=A1, b=B1, rtol="1e-3"), TypeError, "rtol must be a real number"),
    (dict(A=A1, b=B1, maxiter=0), ValueError, "maxiter must be >= 1"),
    (dict(A=A1, b=B1, maxiter=2.5), TypeError, "maxiter must be an integer"),
    (dict(A=A1, b=B1, method="gmres"), ValueError, "method='gmres' is not a known method"),
    (dict(A=A1, b=B1, method=3), TypeError, "method must be a string"),
    (dict(A=A1, b=B1, M="ilu"), ValueError, "M='ilu' is not a known preconditioner"),
    (dict(A=A1, b=B1, M=42), TypeError, "M must be a preconditioner name"),
    (dict(A=A1, b=B1, bogus=1), TypeError, "unexpected keyword argument\\(s\\) \\['bogus'\\]"),
    (dict(A=A1, b=B1, method="fcg", truncation=0), ValueError,
     "truncation must be an integer >= 1"),
    (dict(A="matrix", b=B1), TypeError, "A must be a scipy sparse matrix"),
    (dict(A=A1, b=B1, M="jacobi", omega=2), TypeError,
     r"M='jacobi' got unexpected keyword argument\(s\) \['omega'\]; it accepts no options"),
    (dict(A=sp.diags_array([[-0.1] * 4, [1.0, -1.0, 1.0, 1.0, 1.0], [-0.1] * 4],
                           offsets=[-1, 0, 1]).tocsr(), b=B1, M="jacobi"), ValueError,
     "M='jacobi' needs a positive diagonal"),
    (dict(A=sla.aslinearoperator(A1), b=B1, M="jacobi"), TypeError,
     "M='jacobi' needs the operator's diagonal"),
]


@pytest.mark.parametrize(("kwargs", "exc", "match"), CASES, ids=[c[2][:40] for c in CASES])
def test_bad_input_raises_clear_error(kwargs, exc, match):
    kwargs = dict(kwargs)
    before = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in kwargs.items()}
    A, b = kwargs.pop("A"), kwargs.pop("b")
    with pytest.raises(exc, match=match):
        solve(A, b, **kwargs)
    for k, v in (("A", A), ("b", b)):
        ref = before[k]
        if sp.issparse(v):
            np.testing.assert_array_equal(v.data, ref.data)
        elif isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, ref)


def test_grid_rhs_of_wrong_shape_names_grid_shape():
    A, b = gallery.poisson((6, 5))
    with pytest.raises(ValueError, match="or the grid's shape \\(6, 5\\)"):
        solve(A, b.reshape(5, 6))


def test_fcg_direct_truncation_type():
    with pytest.raises(ValueError, match=r"truncation must be an integer >= 1, got 1\.5"):
        fcg(A1, B1, truncation=1.5)


def test_as_operator_rejects_object_dtype():
    with pytest.raises(TypeError, match="A must have a real floating dtype"):
        as_operator(np.array([[None]], dtype=object))


def test_integer_inputs_are_promoted():
    A = np.array([[2, -1], [-1, 2]])
    res = solve(A, np.array([1, 1]), rtol=1e-12)
    assert res.x.dtype == np.float64
    np.testing.assert_allclose(res.x, [1.0, 1.0])
