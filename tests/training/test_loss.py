import numpy as np
import pytest
import torch

from dcdm.problems import scenes
from dcdm.training.loss import dcdm_loss, line_search
from dcdm.training.torch_ops import masked_laplacian


@pytest.fixture
def problem(rng):
    g = scenes.smoke((12, 12), obstacles=2, seed=1)
    code = torch.tensor(g.stencil_code)
    b = np.stack([g.mask(rng.standard_normal(g.shape)) for _ in range(4)])
    b /= np.linalg.norm(b.reshape(4, -1), axis=1)[:, None, None]
    A = lambda x: masked_laplacian(x, code)  # noqa: E731
    return g, A, torch.from_numpy(b)[:, None]


def test_exact_inverse_has_zero_loss(problem):
    g, A, b = problem
    Acsr = g.laplacian().to_csr()
    import scipy.sparse.linalg as spla

    x = np.stack([spla.spsolve(Acsr.tocsc(), bi.ravel()).reshape(g.shape) for bi in b[:, 0]])
    f = torch.from_numpy(x)[:, None]
    assert float(dcdm_loss(f, b, A)) < 1e-20
    assert float(dcdm_loss(-7 * f, b, A)) < 1e-20  # paper: sign and scale are free
    assert float(dcdm_loss(-7 * f, b, A, mode="abs")) == pytest.approx(4.0)  # ||2 b||^2
    np.testing.assert_allclose(line_search(2 * f, b, A(2 * f)).numpy(), 0.5)


def test_energy_loss(problem):
    g, A, b = problem
    import scipy.sparse.linalg as spla

    Acsr = g.laplacian().to_csr().tocsc()
    e = torch.from_numpy(np.stack([spla.spsolve(Acsr, bi.ravel()).reshape(g.shape)
                                   for bi in b[:, 0]]))[:, None]
    per = dcdm_loss(3 * e, b, A, mode="energy", e=e, reduction="none")
    np.testing.assert_allclose(per.numpy(), 0.0, atol=1e-12)  # exact inverse, any scale
    flipped = dcdm_loss(-e, b, A, mode="energy", e=e, reduction="none")
    np.testing.assert_allclose(flipped.numpy(), 2.0, atol=1e-12)  # wrong sign: worst
    f = torch.randn_like(b)
    per = dcdm_loss(f, b, A, mode="energy", e=e, reduction="none")
    # one exact line search along f leaves ||e - alpha f||_A^2 / ||e||_A^2 (for f.b > 0)
    alpha = line_search(f, b, A(f)).view(-1, 1, 1, 1)
    d = e - alpha * f
    left = (d * A(d)).flatten(1).sum(1) / (e * b).flatten(1).sum(1)
    pos = (f * b).flatten(1).sum(1) > 0
    torch.testing.assert_close(per[pos], left[pos])
    torch.testing.assert_close(per[~pos], 2 - left[~pos])
    assert float(dcdm_loss(torch.zeros_like(b), b, A, mode="energy", e=e)) == 1.0


def test_scale_invariant_and_per_sample(problem, rng):
    _, A, b = problem
    f = torch.randn_like(b)
    per = dcdm_loss(f, b, A, reduction="none")
    assert per.shape == (4,)
    torch.testing.assert_close(dcdm_loss(3.0 * f, b, A, reduction="none"), per)
    torch.testing.assert_close(dcdm_loss(f, b, A), per.mean())


def test_cos_penalty_only_for_wrong_sign(problem):
    _, A, b = problem
    same = dcdm_loss(b, b, A, cos_weight=1.0) - dcdm_loss(b, b, A)
    flipped = dcdm_loss(-b, b, A, cos_weight=1.0) - dcdm_loss(-b, b, A)
    assert float(same) == pytest.approx(0.0, abs=1e-12)
    assert float(flipped) == pytest.approx(1.0)


def test_scale_penalty_pins_alpha(problem):
    _, A, b = problem
    f = torch.randn_like(b)
    alpha = line_search(f, b, A(f))
    scaled = f * alpha.view(-1, 1, 1, 1)  # now alpha == 1
    extra = dcdm_loss(scaled, b, A, scale_weight=1.0) - dcdm_loss(scaled, b, A)
    assert float(extra) == pytest.approx(0.0, abs=1e-10)


def test_errors(problem):
    _, A, b = problem
    with pytest.raises(ValueError, match="mode must be one of"):
        dcdm_loss(b, b, A, mode="l1")
    with pytest.raises(ValueError, match="same shape"):
        dcdm_loss(b[:2], b, A)
    with pytest.raises(ValueError, match=r"mode='energy' needs the solutions e = A\^\{-1\} b"):
        dcdm_loss(b, b, A, mode="energy")
    with pytest.raises(ValueError, match="e and b must have the same shape"):
        dcdm_loss(b, b, A, mode="energy", e=b[:2])
