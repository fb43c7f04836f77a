import numpy as np
import pytest

from dcdm.problems import CellType, scenes
from dcdm.problems.geometry import Box, Sphere
from dcdm.problems.smoke import Obstacle, Simulation, SmokeConfig, project, rising_smoke
from dcdm.problems.smoke.projection import assemble, enforce_solid
from dcdm.problems.smoke.state import (
    FLUID_FACE,
    OPEN_FACE,
    SOLID_FACE,
    classify_faces,
    divergence,
)


def _tank_flags(shape, open_top=True, obstacles=2):
    return np.array(scenes.smoke(shape, obstacles=obstacles, seed=3, open_top=open_top).flags)


def _fluid_norm(velocity, h, fluid):
    return float(np.linalg.norm(divergence(velocity, h)[fluid]))


@pytest.mark.parametrize("shape", [(20, 18), (12, 14, 10)])
@pytest.mark.parametrize("open_top", [True, False], ids=["open", "closed"])
@pytest.mark.parametrize("M", ["mg", "mic0"])
def test_divergence_after_projection_is_below_the_tolerance(shape, open_top, M, random_velocity):
    flags = _tank_flags(shape, open_top)
    h, dt, rtol = 1.0 / shape[1], 0.01, 1e-8
    u = random_velocity(shape)
    proj = project(u, flags, spacing=h, dt=dt, M=M, rtol=rtol)
    fluid = proj.grid.fluid
    assert proj.grid.is_singular == (not open_top)  # the closed box is a singular system
    assert proj.result.converged
    before = np.linalg.norm(proj.rhs) * dt  # rho = 1: ||b|| = ||div u*|| / dt
    # the solver's tolerance, mapped back to the divergence: ||div u|| <= rtol ||div u*||
    assert _fluid_norm(u, h, fluid) <= rtol * before * (1 + 1e-6) + 1e-12
    assert proj.max_div_after <= 1e-6 * proj.max_div_before


def test_rhs_scaling_makes_the_grid_operator_the_projection(random_velocity):
    """div(u) after projection == -(dt / rho) (b - A p) on FLUID cells, for the grid's A."""
    shape, h, dt, rho = (10, 12, 9), 0.1, 0.02, 1.7
    flags = _tank_flags(shape)
    u = random_velocity(shape)
    proj = project(u, flags, spacing=h, dt=dt, rho=rho, rtol=1e-3)  # loose: a real residual
    A = proj.grid.laplacian()
    r = proj.rhs - A.matvec(proj.pressure.reshape(-1))
    fluid = proj.grid.fluid
    np.testing.assert_allclose(divergence(u, h)[fluid], -(dt / rho) * r.reshape(shape)[fluid],
                               atol=1e-10 * proj.max_div_before)
    assert np.linalg.norm(r) == pytest.approx(proj.result.residual_norm, rel=1e-8)


def test_face_classes_and_solid_velocity():
    flags = np.zeros((4, 3), dtype=np.int8)
    flags[1, 1] = CellType.SOLID
    flags[:, -1] = CellType.AIR
    fx, fy = classify_faces(flags)
    assert fx[0, 0] == SOLID_FACE and fx[1, 1] == SOLID_FACE and fx[2, 1] == SOLID_FACE
    assert fx[1, 0] == FLUID_FACE and fx[2, 2] == OPEN_FACE  # between two AIR cells
    assert fy[0, 2] == FLUID_FACE and fy[0, 3] == OPEN_FACE  # top wall beside AIR: outflow
    u = [np.ones((5, 3)), np.ones((4, 4))]
    sv = [np.full((5, 3), 7.0), np.full((4, 4), 7.0)]
    enforce_solid(u, [fx, fy], sv)
    assert u[0][1, 1] == 7.0 and u[0][1, 0] == 1.0 and u[1][1, 0] == 7.0


@pytest.mark.parametrize("open_top", [True, False], ids=["open", "closed"])
def test_fluid_at_rest_without_source_stays_at_rest(open_top):
    # M="mic0": MG's set-up on a grid this small is one dense (pseudo-)inverse, slow when
    # OpenBLAS and Numba threads share 2 cores; this test is about the physics
    cfg = SmokeConfig(shape=(12, 10, 8), open_top=open_top, M="mic0",
                      obstacles=(Obstacle(Sphere((6, 5, 4), 2.0)),))
    sim = Simulation(cfg)
    for rec in sim.run(3):
        assert rec.converged and rec.iterations == 0 and rec.max_div_after == 0.0
    for u in sim.state.velocity:
        assert not u.any()
    assert not sim.state.pressure.any() and not sim.state.density.any()


def test_closed_box_simulation_projects_each_singular_system():
    sim = Simulation(rising_smoke(16, ndim=2, open_top=False, M="mic0", rtol=1e-8))
    for rec in sim.run(4):
        assert rec.singular and rec.converged
        assert rec.max_div_after <= 1e-6 * rec.max_div_before


@pytest.mark.parametrize("ndim", [2, 3])
def test_two_solvers_give_the_same_velocity(ndim):
    fields = []
    for M in ("mg", "mic0"):
        sim = Simulation(rising_smoke(16, ndim=ndim, M=M, rtol=1e-12))
        recs = sim.run(4)
        assert all(r.converged for r in recs)
        assert {r.preconditioner for r in recs} == {M}
        fields.append([u.copy() for u in sim.state.velocity])
    scale = max(float(np.abs(u).max()) for u in fields[0])
    for a, b in zip(*fields, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * scale)


def test_assemble_rejects_bad_input():
    flags = np.zeros((4, 4), dtype=np.int8)
    u = [np.zeros((5, 4)), np.zeros((4, 5))]
    with pytest.raises(ValueError, match="dt must be a positive"):
        assemble(flags, u, 1.0, 0.0)
    with pytest.raises(ValueError, match="rho must be a positive"):
        assemble(flags, u, 1.0, 0.1, rho=-1.0)
    with pytest.raises(ValueError, match=r"velocity component 1 has shape \(4, 4\)"):
        assemble(flags, [u[0], np.zeros((4, 4))], 1.0, 0.1)
    with pytest.raises(ValueError, match="needs lo < hi"):
        Obstacle(Box((2, 2), (1, 1)))
