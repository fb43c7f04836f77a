import numpy as np
import pytest
import torch

from dcdm.problems import scenes
from dcdm.training import data


def test_memory_guard_refuses_before_allocating():
    with pytest.raises(ValueError, match=r"m \* n \* 8 \+ samples \* n \* 4.*max_bytes"):
        data.check_memory(128**3, 10_000, 20_000)  # the paper's 128^3 setting: 312 GiB
    assert data.estimate_bytes(100, 10, 5) == 10 * 100 * 8 + 5 * 100 * 4
    g = scenes.smoke((16, 16), obstacles=1, seed=0)
    with pytest.raises(ValueError, match="above max_bytes"):
        data.build_dataset([g], data.DataMix(), max_bytes=10_000)


def test_lanczos_is_the_solvers_one():
    from dcdm.solvers.spectrum.lanczos import LanczosBasis, lanczos

    assert data.lanczos is lanczos and data.LanczosBasis is LanczosBasis


def test_ritz_rhs_weighting(rng):
    g = scenes.smoke((12, 12), obstacles=2, seed=4)
    basis = data.lanczos(g.laplacian(), 40, seed=0)
    b = data.ritz_rhs(basis, 200, theta=5, rng=rng)
    assert b.shape == (200, g.size) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1, rtol=1e-5)
    assert not b[:, ~g.fluid.ravel()].any()
    _, W = basis.ritz()
    coef = b[:, g.fluid.ravel()].astype(np.float64) @ (W.T @ basis.Q).T  # Ritz coordinates
    cut = 40 // 2 + 5
    low, high = np.mean(coef[:, :cut] ** 2), np.mean(coef[:, cut:] ** 2)
    assert 60 < low / high < 110  # 9^2 = 81


def test_random_and_residual_sources(rng):
    g = scenes.smoke((16, 16), obstacles=2, seed=0)
    for kind in ("random", "smooth"):
        b = data.random_rhs(g, 3, rng, kind)
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1, rtol=1e-5)
    r = data.solve_residuals(g, 7, rng)
    assert r.shape == (7, g.size)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1, rtol=1e-5)
    assert not r[:, ~g.fluid.ravel()].any()
    with pytest.raises(ValueError, match="'cg' or 'mg'"):
        data.solve_residuals(g, 2, rng, methods=("gmres",))


def test_scene_split_is_seeded_and_disjoint():
    a = data.make_scenes((16, 16), 4, 3, obstacles=(0, 1), seed=5)
    b = data.make_scenes((16, 16), 4, 3, obstacles=(0, 1), seed=5)
    assert a.train_seeds == b.train_seeds and a.validation_seeds == b.validation_seeds
    assert not set(a.train_seeds) & set(a.validation_seeds)
    train_flags = {g.flags.tobytes() for g in a.train}
    assert all(g.flags.tobytes() not in train_flags for g in a.validation)
    assert len(a.validation) == 3


def test_build_dataset():
    grids = data.make_scenes((12, 12), 2, 0, seed=0).train
    mix = data.DataMix(ritz=3, random=2, smooth=1, residual=2, lanczos_m=20, theta=2)
    ds = data.build_dataset(grids, mix, seed=3)
    assert len(ds) == 16 and ds.b.shape == (16, 1, 12, 12) and ds.b.dtype == torch.float32
    assert ds.scene.tolist() == [0] * 8 + [1] * 8
    assert [ds.kinds[k] for k in ds.kind[:8].tolist()] == (
        ["ritz"] * 3 + ["random"] * 2 + ["smooth"] + ["residual"] * 2)
    np.testing.assert_allclose(ds.b.flatten(1).norm(dim=1).numpy(), 1, rtol=1e-5)
    again = data.build_dataset(grids, mix, seed=3)
    assert torch.equal(ds.b, again.b)
