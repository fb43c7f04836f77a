import json

import numpy as np
import pytest

import dcdm
from dcdm import cli
from dcdm.problems import io
from dcdm.problems.geometry import Sphere
from dcdm.problems.smoke import Obstacle, Simulation, SmokeConfig, Source, rising_smoke


@pytest.mark.parametrize("ndim", [2, 3])
def test_records_hold_what_each_step_did(ndim):
    sim = Simulation(rising_smoke(16, ndim=ndim, rtol=1e-7))
    recs = sim.run(3)
    assert [r.step for r in recs] == [1, 2, 3] and sim.records == recs
    for r in recs:
        assert r.converged and r.reason == "CONVERGED_RTOL" and r.iterations > 0
        assert r.residual_norm <= 1e-7 * r.rhs_norm
        assert min(r.setup_time, r.solve_time, r.advect_time) >= 0
        assert r.step_time >= r.project_time >= r.solve_time
        assert r.max_div_after < r.max_div_before and not r.singular
    assert sim.state.density.max() == pytest.approx(1.0)
    assert sim.state.time == pytest.approx(sum(r.dt for r in recs))
    json.dumps([r.to_dict() for r in recs])  # JSON-ready


@pytest.mark.parametrize("warm", [True, False])
def test_warm_start_begins_from_the_previous_pressure(warm):
    sim = Simulation(rising_smoke(24, ndim=2, warm_start=warm, rtol=1e-8))
    sim.run(2)
    before = sim.state.pressure.copy()
    sim.step()
    proj = sim.last_projection
    x0 = proj.grid.mask(before).reshape(-1) if warm else np.zeros(proj.rhs.size)
    r0 = np.linalg.norm(proj.rhs - proj.grid.laplacian().matvec(x0))
    assert proj.result.residual_history[0] == pytest.approx(r0, rel=1e-9)


def test_exported_system_round_trips_through_dcdm_solve(tmp_path, capsys):
    sim = Simulation(rising_smoke(16, rtol=1e-6))
    sim.run(2)
    rec = sim.records[-1]
    path = tmp_path / "step.npz"
    sim.export_system(path)
    prob = io.load(path)
    np.testing.assert_array_equal(prob.grid.flags, sim.state.flags)
    assert prob.grid.spacing == sim.config.spacing
    np.testing.assert_array_equal(prob.x.reshape(sim.state.shape), sim.state.pressure)
    # the stored solution has the residual the simulation recorded
    r = prob.b - prob.A.matvec(prob.x)
    assert np.linalg.norm(r) == pytest.approx(rec.residual_norm, rel=1e-9)
    res = dcdm.solve(prob.A, prob.b, x0=prob.x, rtol=1e-6)
    assert res.iterations == 0 and res.residual_norm == pytest.approx(rec.residual_norm, rel=1e-9)
    assert cli.main(["solve", str(path), "--rtol", "1e-6"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and "CONVERGED_RTOL" in out


def test_step_overrides_and_solver_options():
    sim = Simulation(rising_smoke(16, ndim=2))
    assert sim.step(M="jacobi", rtol=1e-4).preconditioner == "jacobi"
    assert sim.step().preconditioner == "mg"


def test_config_errors():
    with pytest.raises(ValueError, match="shape must be 2 or 3 sizes"):
        SmokeConfig(shape=(8,))
    with pytest.raises(ValueError, match="dt must be a positive"):
        SmokeConfig(shape=(8, 8), dt=0.0)
    with pytest.raises(ValueError, match="cfl must be a positive number or None"):
        SmokeConfig(shape=(8, 8), cfl=-1.0)
    with pytest.raises(TypeError, match="obstacles must hold Obstacle objects, got Sphere"):
        SmokeConfig(shape=(8, 8), obstacles=(Sphere((2, 2), 1),))
    with pytest.raises(TypeError, match="config must be a SmokeConfig"):
        Simulation({"shape": (8, 8)})
    with pytest.raises(ValueError, match="n must be an integer >= 8"):
        rising_smoke(4)
    with pytest.raises(ValueError, match="no step has been run yet"):
        Simulation(SmokeConfig(shape=(8, 8))).export_system("x.npz")
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        Simulation(SmokeConfig(shape=(8, 8))).run(-1)
    with pytest.raises(ValueError, match="source's velocity has 3 components but the grid is 2-D"):
        Simulation(SmokeConfig(shape=(8, 8), sources=(Source(Sphere((4, 1), 1.5),
                                                              velocity=(0, 1, 0)),))).step()
    with pytest.raises(ValueError, match="noise must be in"):
        Source(Sphere((4, 1), 1.5), noise=2.0)
    with pytest.raises(ValueError, match="a 3-D sphere cannot be rasterised on a 2-D grid"):
        Simulation(SmokeConfig(shape=(8, 8), obstacles=(Obstacle(Sphere((1, 1, 1), 1)),)))


def test_dcdm_solves_the_steps_with_any_network():
    # the shipped weights may not exist; DCDM's loop takes any callable as its network
    sim = Simulation(rising_smoke(16, ndim=2, method="dcdm", M=None,
                                  solver_options={"model": lambda r: r}, rtol=1e-6))
    for rec in sim.run(2):
        assert rec.method == "dcdm" and rec.converged
        assert rec.residual_norm <= 1e-6 * rec.rhs_norm
