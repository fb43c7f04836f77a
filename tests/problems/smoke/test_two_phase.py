"""Variable density (two-phase flow): the weighted projection, gravity, the scene, the demo."""

import json

import numpy as np
import pytest

from dcdm.problems import CellType, Grid, faces, io, scenes
from dcdm.problems.geometry import Box, Sphere
from dcdm.problems.smoke import (
    Simulation,
    SmokeConfig,
    TwoPhase,
    add_gravity,
    density_weights,
    project,
    two_phase_tank,
)
from dcdm.problems.smoke.demo import run_demo
from dcdm.problems.smoke.state import divergence


def _tank_flags(shape, open_top=True):
    return np.array(scenes.smoke(shape, obstacles=2, seed=3, open_top=open_top).flags)


def _two_phase_rho(shape, ratio=1000.0, rho_light=1.0):
    """A heavy pool on the floor and a heavy drop above it."""
    n = shape[1]
    heavy = (Box((0,) * len(shape), (shape[0], 0.25 * n, *shape[2:])),
             Sphere(tuple(0.5 * m for m in shape), 0.2 * n))
    phi = TwoPhase(heavy, ratio).initial_phase(shape)
    return TwoPhase(heavy, ratio).density(phi, rho_light)


def _com(phi):
    """Height of the centre of mass of ``phi`` (cell units)."""
    y = np.arange(phi.shape[1]) + 0.5
    return float(np.tensordot(phi.sum(axis=0), y, axes=(0, 0)).sum() / phi.sum())


def test_uniform_density_field_is_the_constant_density_system(random_velocity):
    shape, h, dt, rho = (12, 10, 8), 0.1, 0.02, 1.7
    flags = _tank_flags(shape)
    u0 = random_velocity(shape)
    out = []
    for field, ref in ((rho, None), (np.full(shape, rho), rho), (np.full(shape, rho), None)):
        u = [c.copy() for c in u0]
        proj = project(u, flags, spacing=h, dt=dt, rho=field, rho_ref=ref, M="mic0", rtol=1e-8)
        assert proj.grid.face_weights is None and proj.rho_ref == rho
        out.append((proj.rhs, proj.pressure, u))
    for rhs, p, u in out[1:]:  # bit for bit today's system, solve and update
        np.testing.assert_array_equal(rhs, out[0][0])
        np.testing.assert_array_equal(p, out[0][1])
        for a, b in zip(u, out[0][2], strict=True):
            np.testing.assert_array_equal(a, b)
    # the weighted operator with rho_ref / rho_face = 1 is the plain one
    weights = faces.from_density(np.full(shape, rho) / rho)
    assert all((w == 1.0).all() for w in weights)
    plain = Grid(flags, spacing=h).laplacian().to_csr()
    weighted = Grid(flags, spacing=h, face_weights=weights).laplacian().to_csr()
    assert abs(plain - weighted).max() == 0.0


@pytest.mark.parametrize("shape", [(20, 18), (12, 14, 10)])
@pytest.mark.parametrize("open_top", [True, False], ids=["open", "closed"])
@pytest.mark.parametrize("M", ["mic0", "amg"])
def test_divergence_free_after_projection_with_a_1000_to_1_jump(shape, open_top, M,
                                                                 random_velocity):
    flags = _tank_flags(shape, open_top)
    h, dt, rtol = 1.0 / shape[1], 0.01, 1e-8
    rho = _two_phase_rho(shape, 1000.0, rho_light=1.2)
    u = random_velocity(shape)
    proj = project(u, flags, spacing=h, dt=dt, rho=rho, rho_ref=1.2, M=M, rtol=rtol)
    ws = proj.grid.face_weights
    assert min(w.min() for w in ws) == pytest.approx(1e-3) and max(w.max() for w in ws) == 1.0
    assert proj.result.converged and proj.grid.is_singular == (not open_top)
    fluid = proj.grid.fluid
    before = np.linalg.norm(proj.rhs) * dt / 1.2  # ||b|| = (rho_ref / dt) ||div u*||
    assert np.linalg.norm(divergence(u, h)[fluid]) <= rtol * before * (1 + 1e-6) + 1e-12
    assert proj.max_div_after <= 1e-6 * proj.max_div_before


def test_weighted_divergence_is_the_solvers_residual(random_velocity):
    """div(u) == -(dt / rho_ref) (b - A p) on FLUID cells, A the weighted grid operator."""
    shape, h, dt = (10, 12, 9), 0.1, 0.02
    flags = _tank_flags(shape)
    rho = _two_phase_rho(shape, 1000.0)
    u = random_velocity(shape)
    proj = project(u, flags, spacing=h, dt=dt, rho=rho, M="jacobi", rtol=1e-3)  # a real residual
    assert proj.rho_ref == 1.0  # rho.min() by default
    r = proj.rhs - proj.grid.laplacian().to_csr() @ proj.pressure.reshape(-1)
    fluid = proj.grid.fluid
    np.testing.assert_allclose(divergence(u, h)[fluid], -(dt / 1.0) * r.reshape(shape)[fluid],
                               atol=1e-10 * proj.max_div_before)
    assert np.linalg.norm(r) == pytest.approx(proj.result.residual_norm, rel=1e-8)


def test_a_resting_pool_stays_at_rest():
    # gravity on a flat heavy layer is a gradient: the projection must cancel it (hydrostatics)
    shape, h, dt = (16, 16), 1 / 16, 0.01
    flags = np.full(shape, CellType.FLUID, dtype=np.int8)
    flags[:, -1] = CellType.AIR
    rho = np.ones(shape)
    rho[:, :6] = 1000.0
    u = [np.zeros((17, 16)), np.zeros((16, 17))]
    add_gravity(u, rho, dt, 9.81, 1.0)
    assert u[1][:, 1:6].min() == pytest.approx(-dt * 9.81 * (1 - 1e-3))
    assert (u[1][:, 7:] == 0).all()  # the ambient fluid feels no force
    proj = project(u, flags, spacing=h, dt=dt, rho=rho, rho_ref=1.0, M="mic0", rtol=1e-10)
    assert proj.result.converged
    assert max(float(np.abs(c).max()) for c in u) < 1e-8
    # the pressure is the heavy layer's hydrostatic excess over the gas's, face by face:
    # p_j - p_(j+1) = g h (rho_f - rho_gas), five heavy faces and the interface (rho_f 500.5)
    np.testing.assert_allclose(proj.pressure[:, 0], 9.81 * h * (5 * 999.0 + 499.5), rtol=1e-8)
    assert (proj.pressure[:, 6:] == pytest.approx(0.0, abs=1e-6))


@pytest.mark.parametrize("ndim", [2, 3])
def test_two_phase_tank_runs_and_the_heavy_fluid_sinks(ndim):
    sim = Simulation(two_phase_tank(10, ndim=ndim, M="mic0", rtol=1e-7))
    start, drop = _com(sim.state.phase), _com(sim.state.phase[:, 3:])  # the pool is 2 deep
    mass = sim.state.phase.sum()
    recs = sim.run(4)
    assert all(r.converged and r.density_ratio == pytest.approx(1000.0) for r in recs)
    assert all(r.max_div_after <= 1e-5 * r.max_div_before for r in recs)
    for f in (*sim.state.velocity, sim.state.pressure, sim.state.phase):
        assert np.isfinite(f).all()
    phi = sim.state.phase
    assert phi.min() >= 0.0 and phi.max() <= 1.0
    assert _com(phi) < start and _com(phi[:, 3:]) < drop - 0.5  # the drop falls
    assert abs(phi.sum() - mass) < 0.05 * mass
    assert sim.last_projection.grid.face_weights is not None


def test_exported_two_phase_system_keeps_its_weights(tmp_path):
    sim = Simulation(two_phase_tank(10, ndim=2, M="mic0", rtol=1e-6))
    sim.run(2)
    path = tmp_path / "tp.npz"
    sim.export_system(path)
    prob = io.load(path)
    A = sim.last_projection.grid.laplacian().to_csr()
    assert abs(prob.A.to_csr() - A).max() == 0.0
    r = prob.b - prob.A.matvec(prob.x)
    assert np.linalg.norm(r) == pytest.approx(sim.records[-1].residual_norm, rel=1e-9)


def test_bad_rho_is_refused_naming_it():
    shape = (6, 5)
    flags = np.zeros(shape, dtype=np.int8)
    u = [np.zeros((7, 5)), np.zeros((6, 6))]
    bad_field = np.ones(shape)
    bad_field[2, 2] = -1.0
    nan_field = np.ones(shape)
    nan_field[0, 0] = np.nan
    for rho, match in ((bad_field, r"rho must be > 0 in every cell, got min -1"),
                       (nan_field, r"rho must be finite in every cell"),
                       (np.ones((5, 6)), r"rho must be .* the grid's shape \(6, 5\).*\(5, 6\)"),
                       (0.0, r"rho must be a positive finite density"),
                       (np.inf, r"rho must be a positive finite density")):
        with pytest.raises(ValueError, match=match):
            project([c.copy() for c in u], flags, spacing=1.0, dt=0.1, rho=rho)
    with pytest.raises(TypeError, match=r"rho must be a number or a real array"):
        density_weights(np.ones(shape, dtype=bool), shape)
    with pytest.raises(ValueError, match=r"rho_ref must be a positive finite density"):
        density_weights(np.ones(shape), shape, rho_ref=-2.0)
    with pytest.raises(ValueError, match=r"rho must be a positive finite density"):
        SmokeConfig(shape=(8, 8), rho=-1.0)
    with pytest.raises(TypeError, match=r"two_phase must be a TwoPhase"):
        SmokeConfig(shape=(8, 8), two_phase=1000.0)
    with pytest.raises(ValueError, match=r"density_ratio must be a finite number >= 1"):
        TwoPhase((Box((0, 0), (8, 2)),), density_ratio=0.5)
    with pytest.raises(ValueError, match=r"gravity must be a finite number >= 0"):
        TwoPhase((Box((0, 0), (8, 2)),), gravity=np.nan)
    with pytest.raises(TypeError, match=r"heavy must hold .* Shape objects, got str"):
        TwoPhase(("pool",))


def test_demo_compares_every_method_on_a_two_phase_system_too(tmp_path):
    out = run_demo(n=12, steps=2, ndim=2, compare=1, out=tmp_path / "d", progress=False,
                   report=lambda text: None)
    tp = out.two_phase
    assert tp["scene"] == "two_phase_tank" and tp["shape"] == [12, 12]
    assert tp["density_ratio"] == 1000.0 and tp["step"] >= 1
    names = {(r["method"], r["M"]) for r in tp["rows"]}
    assert {("cg", "mic0"), ("cg", "amg"), ("cg", "none")} <= names
    assert all(r["reason"].startswith("CONVERGED") for r in tp["rows"]
               if r["method"] == "cg" and r["M"] in ("mic0", "amg"))
    data = json.loads(out.json.read_text())
    assert data["two_phase"]["rows"] == tp["rows"]
    assert data["summary"]["two_phase"]["all_converged"]
    assert "cg M=mic0" in data["summary"]["two_phase"]["converged_methods"]
    assert [c["step"] for c in data["comparisons"]] == [2]  # the smoke's comparison unchanged
    system = io.load(out.folder / tp["system"])
    assert system.A.shape == (144, 144) and system.x is not None
    assert out.folder / tp["system"] in out.systems


def test_demo_runs_the_two_phase_scene(tmp_path):
    out = run_demo(n=10, steps=2, ndim=2, compare=0, out=tmp_path / "s", progress=False,
                   scene="two_phase_tank", report=lambda text: None)
    data = json.loads(out.json.read_text())
    assert data["scene"]["name"] == "two_phase_tank" and data["two_phase"] is None
    assert all(r["density_ratio"] == pytest.approx(1000.0) for r in data["records"])
    assert len(out.frames) == 2
    with pytest.raises(ValueError, match=r"scene must be one of \['rising_smoke', "):
        run_demo(n=10, steps=1, ndim=2, out=tmp_path / "x", scene="waterfall", progress=False)
