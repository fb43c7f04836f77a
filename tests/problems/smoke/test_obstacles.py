import itertools
import math

import numpy as np
import pytest

from dcdm.problems import CellType
from dcdm.problems.geometry import Box, Sphere
from dcdm.problems.smoke import Obstacle, Simulation, circle, oscillate, rasterize, rising_smoke


def _touching(mask, axis):
    pad = [(0, 0)] * mask.ndim
    pad[axis] = (1, 1)
    mp = np.pad(mask, pad)
    lo = [slice(None)] * mask.ndim
    hi = [slice(None)] * mask.ndim
    lo[axis], hi[axis] = slice(0, -1), slice(1, None)
    return mp[tuple(lo)] | mp[tuple(hi)]


@pytest.mark.parametrize("ndim", [2, 3])
def test_moving_obstacle_changes_flags_and_solids_carry_their_velocity(ndim):
    sim = Simulation(rising_smoke(20, ndim=ndim))
    sphere = next(ob for ob in sim.config.obstacles if ob.moving)
    seen = [sim.state.flags.copy()]
    for _ in range(3):
        rec = sim.step()
        assert rec.converged
        seen.append(sim.state.flags.copy())
        t, h = sim.state.time, sim.config.spacing
        mask = sphere.mask(sim.state.shape, t)
        np.testing.assert_array_equal(sim.state.flags[mask], CellType.SOLID)
        v = sphere.velocity(t, h)
        assert abs(v[0]) > 0
        # every face of (and inside) the obstacle carries its velocity after the projection
        for a, u in enumerate(sim.state.velocity):
            np.testing.assert_allclose(u[_touching(mask, a)], v[a], rtol=1e-12, atol=1e-15)
        assert (sim.state.density[mask] == 0).all()
    assert any((a != b).any() for a, b in itertools.pairwise(seen))


def test_paths_and_velocities():
    ob = Obstacle(Sphere((10, 10, 10), 3), path=circle(4.0, period=2.0))
    assert ob.offset(0.0) == pytest.approx((0.0, 0.0, 0.0))
    assert ob.offset(0.5) == pytest.approx((-4.0, 0.0, 4.0))
    # |v| = 2 pi r / T in cell units, times the spacing
    assert math.hypot(*ob.velocity(0.3, spacing=0.5)) == pytest.approx(2 * math.pi * 4 / 2 * 0.5,
                                                                        rel=1e-6)
    still = Obstacle(Box((1, 1), (3, 3)))
    assert not still.moving and still.offset(1.0) == () and still.velocity(1.0, 1.0) == ()


def test_rasterize_static_and_moving():
    still = Obstacle(Box((0, 0), (2, 8)))
    mover = Obstacle(Box((4, 2), (6, 4)), path=oscillate((2.0, 0.0), period=4.0))
    solid, fv = rasterize([still, mover], (10, 8), t=0.5, spacing=0.1)
    # moved by 2 sin(pi / 4) = 1.41 cells: centres 5.5 and 6.5 are inside
    assert solid[:2].all() and solid[5:7, 2:4].all() and solid.sum() == 16 + 4
    vx = 2.0 * (2 * math.pi / 4.0) * math.cos(math.pi / 4) * 0.1
    assert fv[0][5:8, 2:4] == pytest.approx(vx) and not fv[0][:5].any()
    assert not fv[1].any()  # no vertical motion; static faces stay at zero


def test_obstacle_errors():
    with pytest.raises(TypeError, match=r"shape must be a dcdm\.problems\.geometry Shape"):
        Obstacle("sphere")
    with pytest.raises(TypeError, match="path must be a callable"):
        Obstacle(Sphere((1, 1), 1), path=3)
    with pytest.raises(ValueError, match="period must be a positive"):
        oscillate((1, 0), period=0)
    with pytest.raises(ValueError, match="axes must be two different axes"):
        circle(1.0, 1.0, axes=(0, 0))
