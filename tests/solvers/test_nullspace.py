import numpy as np
import pytest
import scipy.sparse as sp

from dcdm.solvers import ConstantNullSpace, detect_nullspace


def test_project_removes_mean_per_region(rng):
    labels = np.array([0, 0, 0, -1, 1, 1, -1])
    ns = ConstantNullSpace(labels)
    v = rng.standard_normal(7)
    p = ns.project(v)
    assert ns.residual(p) == pytest.approx(0, abs=1e-14)
    np.testing.assert_allclose(p[[3, 6]], v[[3, 6]])
    assert p[:3].sum() == pytest.approx(0, abs=1e-14)
    assert ns.dimension == 2
    w = v.copy()
    ns.project(w, out=w)
    np.testing.assert_allclose(w, p)


def test_labels_must_name_a_region():
    with pytest.raises(ValueError, match="at least one region"):
        ConstantNullSpace(np.array([-1, -1]))


def test_detect_on_graph_laplacian_and_spd():
    # two components: a path graph Laplacian (singular) and a Dirichlet block (SPD)
    L = sp.diags_array([-np.ones(3), [1.0, 2, 2, 1], -np.ones(3)], offsets=[-1, 0, 1])
    D = sp.diags_array([-np.ones(2), 2 * np.ones(3), -np.ones(2)], offsets=[-1, 0, 1])
    A = sp.block_diag([L, D]).tocsr()
    ns = detect_nullspace(A)
    assert ns is not None and ns.dimension == 1
    np.testing.assert_array_equal(ns.labels, [0, 0, 0, 0, -1, -1, -1])
    assert detect_nullspace(D) is None
