"""dcdm.training.constraints.projection: the pressure projection as a differentiable layer.

Oracles: the NumPy smoke code (``divergence`` and ``subtract_gradient`` of
problems/smoke/state.py, ``project`` of problems/smoke/projection.py), the projection's own
properties (divergence-free on FLUID cells, idempotent) and ``torch.autograd.gradcheck``.
"""

import copy
import warnings

import numpy as np
import pytest

from dcdm.problems import CellType
from dcdm.problems.smoke.projection import project
from dcdm.problems.smoke.state import (
    OPEN_FACE,
    SOLID_FACE,
    classify_faces,
    face_shape,
    subtract_gradient,
)
from dcdm.problems.smoke.state import divergence as np_divergence

torch = pytest.importorskip("torch")

from dcdm.training.constraints.projection import (  # noqa: E402
    ProjectionLayer,
    divergence,
    gradient,
    project_velocity,
)

F64 = torch.float64
FLUID, SOLID, AIR = int(CellType.FLUID), int(CellType.SOLID), int(CellType.AIR)


@pytest.fixture(autouse=True)
def quiet_sparse_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*", category=UserWarning)
        yield


def scene(shape, open_top=True, obstacle=True):
    """A box (walls, floor), an open top or not, and a solid block inside."""
    flags = np.full(shape, FLUID, dtype=np.int8)
    if open_top:
        flags[:, -1, ...] = AIR
    if obstacle:
        n0, n1 = shape[:2]
        flags[n0 // 4: n0 // 2, n1 // 3: n1 // 2, ...] = SOLID
    return flags


def random_velocity(rng, cells, batch=None, requires_grad=False):
    lead = () if batch is None else (batch,)
    return [torch.tensor(rng.standard_normal(lead + face_shape(cells, a)), dtype=F64,
                         requires_grad=requires_grad) for a in range(len(cells))]


def fluid_div(velocity, flags, h):
    """Divergence on FLUID cells, one row per scene."""
    d = divergence(velocity, h).detach()
    mask = torch.from_numpy(np.broadcast_to(flags == FLUID, d.shape).copy())
    return torch.where(mask, d, 0.0).reshape(d.shape[0], -1)


# -- divergence and gradient against the NumPy smoke code -----------------------------------
@pytest.mark.parametrize("cells", [(7, 5), (4, 5, 3)])
def test_divergence_matches_numpy(rng, cells):
    u = random_velocity(rng, cells, batch=3)
    got = divergence(u, 0.25).numpy()
    for i in range(3):
        np.testing.assert_allclose(got[i], np_divergence([c[i].numpy() for c in u], 0.25),
                                   rtol=1e-14, atol=1e-13)
    unbatched = divergence([c[0] for c in u], 0.25).numpy()
    np.testing.assert_array_equal(unbatched, got[0])


@pytest.mark.parametrize("boundary", [CellType.SOLID, CellType.AIR])
@pytest.mark.parametrize("cells", [(6, 5), (4, 3, 5)])
def test_gradient_matches_subtract_gradient(rng, random_flags, cells, boundary):
    flags = random_flags(cells)
    faces = classify_faces(flags, boundary)
    p = np.where(flags == FLUID, rng.standard_normal(cells), 0.0)
    u = [rng.standard_normal(face_shape(cells, a)) for a in range(len(cells))]
    h, coef = 0.5, 0.3
    expect = copy.deepcopy(u)
    subtract_gradient(expect, p, faces, coef)
    grad = gradient(torch.tensor(p), h)
    for a in range(len(cells)):
        got = np.where(faces[a] == 1, u[a] - coef * h * grad[a].numpy(), u[a])
        np.testing.assert_allclose(got, expect[a], rtol=1e-14, atol=1e-14)
    batched = gradient(torch.tensor(p)[None].repeat(2, *([1] * len(cells))), h, ndim=len(cells))
    for a in range(len(cells)):
        np.testing.assert_array_equal(batched[a][1].numpy(), grad[a].numpy())


# -- the layer -------------------------------------------------------------------------------
@pytest.mark.parametrize("open_top", [True, False])
def test_layer_matches_numpy_project(rng, open_top):
    cells, h, dt, rho = (12, 10), 1 / 10, 0.02, 1.3
    flags = scene(cells, open_top)
    u = [rng.standard_normal(face_shape(cells, a)) for a in range(2)]
    solid = [np.zeros_like(c) for c in u]
    solid[0][:] = 0.7  # a rigid motion along axis 0: no net flux through the block
    ref = copy.deepcopy(u)
    proj = project(ref, flags, spacing=h, dt=dt, rho=rho, solid_velocity=solid, M="mg",
                   rtol=1e-12)
    layer = ProjectionLayer(h, dt=dt, rho=rho, rtol=1e-12)
    out, p = layer([torch.tensor(c) for c in u], flags, [torch.tensor(c) for c in solid],
                   return_pressure=True)
    faces = classify_faces(flags)
    for a in range(2):
        known = faces[a] != OPEN_FACE  # OPEN faces: the simulation extrapolates, the layer keeps
        np.testing.assert_allclose(out[a].detach().numpy()[known], ref[a][known], atol=1e-9)
        np.testing.assert_array_equal(out[a].detach().numpy()[~known], u[a][~known])
        np.testing.assert_array_equal(out[a].detach().numpy()[faces[a] == SOLID_FACE],
                                      solid[a][faces[a] == SOLID_FACE])
    np.testing.assert_allclose(p.detach().numpy(), proj.pressure,
                               atol=1e-9 * abs(proj.pressure).max())
    assert layer.solves == 1 and layer.iterations == proj.result.iterations


@pytest.mark.parametrize("case", ["open", "closed", "air-boundary", "per-scene", "3-d"])
def test_output_is_divergence_free(rng, random_flags, case):
    cells = (5, 4, 6) if case == "3-d" else (16, 12)
    boundary = CellType.AIR if case == "air-boundary" else CellType.SOLID
    if case == "per-scene":
        flags = np.stack([scene(cells), scene(cells, open_top=False), random_flags(cells)])
    else:
        flags = np.stack([scene(cells, open_top=case != "closed",
                                obstacle=case != "air-boundary")] * 3)
    h, rtol = 1 / cells[1], 1e-10
    u = random_velocity(rng, cells, batch=3)
    layer = ProjectionLayer(h, boundary=boundary, rtol=rtol)
    v = layer(u, flags if case == "per-scene" else flags[0])  # shared flags: one solve
    walls = [np.stack([classify_faces(f, boundary)[a] == SOLID_FACE for f in flags])
             for a in range(len(cells))]
    before = fluid_div([torch.where(torch.from_numpy(m), 0.0, c) for m, c in zip(
        walls, u, strict=True)], flags, h)  # u* with the walls' zero velocity
    after = fluid_div(v, flags, h)
    assert bool((after.norm(dim=1) <= 2 * rtol * before.norm(dim=1)).all())
    assert float(after.abs().max()) < 1e-7
    assert layer.solves == 3 and all(c.shape == w.shape for c, w in zip(u, v, strict=True))


def test_shared_flags_one_solve_equals_scene_by_scene(rng, random_flags):
    cells = (10, 9)
    flags = random_flags(cells)
    u = random_velocity(rng, cells, batch=3)
    layer = ProjectionLayer(1.0, rtol=1e-12, cache_size=1)
    together = layer(u, flags)  # one sparse_solve, 3 columns
    alone = [layer([c[i] for c in u], flags) for i in range(3)]
    per_scene = layer(u, np.stack([flags, random_flags(cells), flags]))  # two groups
    for a in range(2):
        for i in range(3):
            np.testing.assert_allclose(together[a][i].detach(), alone[i][a].detach(), atol=1e-10)
        for i in (0, 2):
            np.testing.assert_allclose(per_scene[a][i].detach(), alone[i][a].detach(), atol=1e-10)
    assert len(layer._cache) == 1  # cache_size=1: the least recently used grid was dropped


def test_projection_is_idempotent_and_keeps_divergence_free_fields(rng):
    cells, h = (12, 12), 1 / 12
    flags = scene(cells, open_top=False, obstacle=False)
    layer = ProjectionLayer(h, rtol=1e-12)
    once = layer(random_velocity(rng, cells, batch=2), flags)
    twice = layer([c.detach() for c in once], flags)
    scale = max(float(c.abs().max()) for c in once)
    for a in range(2):
        torch.testing.assert_close(twice[a], once[a].detach(), atol=1e-9 * scale, rtol=0)
    # the discrete curl of a stream function vanishing on the walls: divergence-free
    psi = np.zeros((cells[0] + 1, cells[1] + 1))
    psi[1:-1, 1:-1] = rng.standard_normal((cells[0] - 1, cells[1] - 1))
    free = [torch.tensor(np.diff(psi, axis=1) / h), torch.tensor(-np.diff(psi, axis=0) / h)]
    assert float(divergence(free, h).abs().max()) < 1e-12
    kept = layer(free, flags)
    for a in range(2):
        torch.testing.assert_close(kept[a], free[a], atol=1e-11, rtol=0)


@pytest.mark.parametrize("open_top", [True, False])
def test_gradcheck(rng, open_top):
    cells = (8, 8)
    flags = scene(cells, open_top)
    u = random_velocity(rng, cells, batch=2, requires_grad=True)
    solid = random_velocity(rng, cells, requires_grad=True)
    solid[1] = solid[1].detach() * 0 + 0.5  # rigid: a closed box needs zero net wall flux
    solid[0] = (solid[0].detach() * 0 - 0.25).requires_grad_()
    layer = ProjectionLayer(1 / 8, dt=0.1, rtol=1e-13)

    def f(u0, u1, s0):
        s = [s0.expand_as(u0), solid[1].expand_as(u1)]
        return tuple(layer([u0, u1], flags, s))

    assert torch.autograd.gradcheck(f, (*u, solid[0]), eps=1e-6, atol=1e-7)


def test_gradients_reach_a_network(rng):
    cells = (8, 6)
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 2, 3, padding=1, dtype=F64)
    x = torch.tensor(rng.standard_normal((4, 3, 9, 7)), dtype=F64)
    y = net(x)
    v = ProjectionLayer(1 / 6, rtol=1e-10)
    flags = np.stack([scene(cells)] * 2 + [scene(cells, open_top=False)] * 2)
    out = v([y[:, 0, :, :6], y[:, 1, :8, :]], flags)
    sum((w ** 2).mean() for w in out).backward()
    for prm in net.parameters():
        assert prm.grad is not None and bool(torch.isfinite(prm.grad).all())
        assert float(prm.grad.abs().max()) > 0
    assert v.solves == 4 and v.iterations >= 2 * v.solves  # forward + adjoint CG iterations
    v.reset_counts()
    assert (v.solves, v.iterations) == (0, 0)


def test_edge_cases(rng):
    cells = (6, 5)
    u = random_velocity(rng, cells)
    before = [c.clone() for c in u]
    solid_only = np.full(cells, SOLID, dtype=np.int8)
    layer = ProjectionLayer(1.0)
    for a, w in enumerate(layer(u, solid_only)):  # no FLUID cell: no solve, walls at rest
        assert float(w.abs().max()) == 0.0 and torch.equal(u[a], before[a])
    assert layer.solves == 0
    f32 = [c.float() for c in u]
    out = project_velocity(f32, torch.from_numpy(scene(cells)), spacing=1.0, rtol=1e-6)
    assert out[0].dtype == torch.float32
    assert float(fluid_div([c[None] for c in out], scene(cells)[None], 1.0).abs().max()) < 1e-4


# -- bad input --------------------------------------------------------------------------------
def test_bad_input(rng):
    cells = (6, 5)
    flags = scene(cells)
    u = random_velocity(rng, cells, batch=2)
    layer = ProjectionLayer(1.0)
    cases = [
        (TypeError, "must be a list of torch tensors", lambda: layer(u[0], flags)),
        (ValueError, "2 or 3 components", lambda: layer(u[:1], flags)),
        (TypeError, "component 1 must be a torch.Tensor", lambda: layer([u[0], u[1].numpy()],
                                                                         flags)),
        (TypeError, "float32 or float64", lambda: layer([c.long() for c in u], flags)),
        (TypeError, "share one dtype", lambda: layer([u[0], u[1].float()], flags)),
        (ValueError, r"component 1 has shape \(2, 5, 6\) but flags", lambda: layer(
            [u[0], u[1][:, :5]], flags)),
        (ValueError, r"component 0 has shape \(2, 7, 5\) but flags of shape \(7, 5\)",
         lambda: layer(u, np.zeros((7, 5), np.int8))),
        (ValueError, "flags hold 3 scenes but velocity has batch size 2",
         lambda: layer(u, np.stack([flags] * 3))),
        (ValueError, "no batch axis", lambda: layer([c[0] for c in u], np.stack([flags] * 2))),
        (ValueError, "flags must have shape cells", lambda: layer(u, flags[0])),
        (TypeError, "integer CellType codes", lambda: layer(u, flags.astype(float))),
        (ValueError, "unknown cell codes", lambda: layer(u, flags + 3)),
        (ValueError, "component 1 contains NaN", lambda: layer(
            [u[0], u[1].clone().index_fill_(1, torch.tensor([0]), float("nan"))], flags)),
        (ValueError, "solid_velocity has 3 components", lambda: layer(u, flags, [*u, u[0]])),
        (ValueError, "solid_velocity must match", lambda: layer(u, flags, [u[0], u[1][..., :5]])),
        (ValueError, "solid_velocity component 0 contains NaN or Inf", lambda: layer(
            u, flags, [torch.full_like(u[0], float("inf")), u[1]])),
        (ValueError, "spacing must be a positive finite", lambda: ProjectionLayer(0.0)),
        (TypeError, "dt must be a positive number", lambda: ProjectionLayer(1.0, dt="1")),
        (ValueError, "rho must be a positive finite", lambda: ProjectionLayer(1.0, rho=np.inf)),
        (ValueError, "rtol must be a number >= 0", lambda: ProjectionLayer(1.0, rtol=-1.0)),
        (ValueError, "M must name a linear SPD preconditioner", lambda: ProjectionLayer(
            1.0, M="neural")),
        (ValueError, "boundary must be", lambda: ProjectionLayer(1.0, boundary=CellType.FLUID)),
        (ValueError, "cache_size must be an integer >= 1", lambda: ProjectionLayer(
            1.0, cache_size=0)),
        (ValueError, r"ndim must be an integer in \[1, 2\]", lambda: gradient(
            torch.zeros(3, 3), 1.0, ndim=3)),
        (TypeError, "pressure must be a torch.Tensor", lambda: gradient(np.zeros(3), 1.0)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
