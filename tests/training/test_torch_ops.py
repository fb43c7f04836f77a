import numpy as np
import pytest
import torch

from dcdm.kernels import reference
from dcdm.problems import CellType, Grid, scenes
from dcdm.training.torch_ops import GridOperator, masked_laplacian


@pytest.mark.parametrize("shape", [(9, 7), (6, 5, 7)])
@pytest.mark.parametrize("boundary", [CellType.SOLID, CellType.AIR])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_numpy_reference(rng, random_flags, shape, boundary, dtype):
    g = Grid(random_flags(shape), spacing=0.5, boundary=boundary)
    xs = np.stack([g.mask(rng.standard_normal(shape)) for _ in range(3)])
    ref = np.stack([reference.laplacian_matvec(g.padded_flags, x, np.empty_like(x), 4.0)
                    for x in xs])
    code = torch.tensor(g.stencil_code)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    out = masked_laplacian(torch.from_numpy(xs).to(dtype), code, 4.0)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), ref, atol=tol * np.abs(ref).max())
    # channel axis and per-sample codes give the same
    out2 = masked_laplacian(torch.from_numpy(xs).to(dtype)[:, None], code.expand(3, *shape), 4.0)
    np.testing.assert_allclose(out2[:, 0].numpy(), ref, atol=tol * np.abs(ref).max())


def test_masks_non_fluid_input(rng):
    g = scenes.smoke((12, 12), obstacles=3, seed=2)
    x = rng.standard_normal(g.shape)  # not zero off FLUID
    out = masked_laplacian(torch.from_numpy(x)[None], torch.tensor(g.stencil_code))[0].numpy()
    expected = g.laplacian().matvec(g.mask(x).ravel()).reshape(g.shape)
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_grid_operator_mixes_scenes(rng):
    grids = [scenes.smoke((10, 10), obstacles=2, seed=s) for s in (0, 1, 2)]
    op = GridOperator.from_grids(grids)
    scene = torch.tensor([2, 0, 1, 2])
    x = torch.from_numpy(np.stack([grids[s].mask(rng.standard_normal((10, 10)))
                                   for s in scene.tolist()]))[:, None]
    out = op(x, scene)
    for i, s in enumerate(scene.tolist()):
        ref = grids[s].laplacian().matvec(x[i, 0].numpy().ravel()).reshape(10, 10)
        np.testing.assert_allclose(out[i, 0].numpy(), ref, atol=1e-12)
    assert op.fluid(scene).shape == (4, 1, 10, 10)


def test_gradient_is_the_operator(rng):
    # A is symmetric on the FLUID cells: d/dx (y . A x) = A y
    g = scenes.smoke((8, 8), obstacles=1, seed=0)
    code = torch.tensor(g.stencil_code)
    x = torch.from_numpy(g.mask(rng.standard_normal(g.shape)))[None].requires_grad_()
    y = torch.from_numpy(g.mask(rng.standard_normal(g.shape)))[None]
    (y * masked_laplacian(x, code)).sum().backward()
    torch.testing.assert_close(x.grad, masked_laplacian(y, code))


def test_shape_errors():
    code = torch.zeros(5, 5, dtype=torch.int8)
    with pytest.raises(ValueError, match="grid shapes differ"):
        masked_laplacian(torch.zeros(2, 4, 4), code)
    with pytest.raises(ValueError, match="share shape"):
        GridOperator.from_grids([scenes.tank((8, 8)), scenes.tank((9, 8))])


def test_per_sample_batch_mismatch():
    code = torch.zeros(3, 5, 5, dtype=torch.int8)
    with pytest.raises(ValueError, match="3 per-sample codes for a batch of 2"):
        masked_laplacian(torch.zeros(2, 1, 5, 5), code, ndim=2)
