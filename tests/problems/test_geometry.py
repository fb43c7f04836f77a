"""Tests of :mod:`dcdm.problems.geometry`: rasterised spheres, boxes, unions, painting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from dcdm.problems import Box, CellType, Sphere, Union
from dcdm.problems.geometry import paint


def _brute_sphere(shape, center, radius) -> np.ndarray:
    """Cell-by-cell reference: a cell is inside when its centre is."""
    out = np.zeros(shape, dtype=bool)
    for idx in np.ndindex(*shape):
        d2 = sum((i + 0.5 - c) ** 2 for i, c in zip(idx, center, strict=True))
        out[idx] = d2 <= radius**2
    return out


# -- spheres ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "center", "radius", "exact"),
    [
        ((64, 64), (32.0, 32.0), 25.0, math.pi * 25.0**2),
        ((60, 50), (29.3, 24.8), 21.7, math.pi * 21.7**2),
        ((32, 32, 32), (16.0, 16.0, 16.0), 13.0, 4 / 3 * math.pi * 13.0**3),
        ((30, 28, 31), (15.2, 13.9, 15.6), 12.4, 4 / 3 * math.pi * 12.4**3),
    ],
)
def test_sphere_cell_count_close_to_area_or_volume(shape, center, radius, exact):
    m = Sphere(center, radius).mask(shape)
    assert m.shape == shape
    assert m.dtype == bool
    assert abs(int(m.sum()) - exact) / exact < 0.02


@pytest.mark.parametrize(
    ("shape", "center", "radius"),
    [((9, 7), (4.0, 3.5), 2.6), ((6, 5, 7), (1.0, 2.2, 5.5), 2.3), ((8, 8), (-1.0, 9.0), 4.0)],
)
def test_sphere_matches_cell_centre_rule(shape, center, radius):
    assert_array_equal(Sphere(center, radius).mask(shape), _brute_sphere(shape, center, radius))


def test_sphere_small_counts_by_hand():
    # centre on a cell corner: the four cells around it have centres at distance sqrt(0.5)
    assert int(Sphere((4, 4), 0.75).mask((8, 8)).sum()) == 4
    assert int(Sphere((4, 4), 0.7).mask((8, 8)).sum()) == 0
    # centre at a cell centre: that cell plus its face neighbours (distance 1)
    assert int(Sphere((4.5, 4.5), 1.0).mask((8, 8)).sum()) == 5
    assert int(Sphere((4.5, 4.5, 4.5), 1.0).mask((8, 8, 8)).sum()) == 7


def test_sphere_outside_the_grid_is_empty():
    assert not Sphere((100.0, 100.0), 5.0).mask((10, 10)).any()


def test_sphere_mask_is_writable_copy():
    m = Sphere((2, 2), 1.5).mask((5, 5))
    m[0, 0] = True  # broadcast views would be read-only
    assert m[0, 0]


# -- boxes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "shape", "count"),
    [
        ((1.0, 2.0), (5.0, 7.0), (10, 10), 4 * 5),
        ((0.6, 0.0), (3.5, 2.0), (10, 10), 2 * 2),  # half-open: 0.5 < 0.6, 3.5 not < 3.5
        ((-3.0, -3.0), (2.0, 2.0), (5, 5), 2 * 2),  # clipped by the grid
        ((1.0, 0.0, 2.0), (4.0, 6.0, 3.0), (7, 5, 6), 3 * 5 * 1),
        ((0.0, 0.0, 0.0), (7.0, 5.0, 6.0), (7, 5, 6), 7 * 5 * 6),
        ((2.2, 2.2), (2.4, 2.4), (5, 5), 0),  # no cell centre inside
    ],
)
def test_box_cell_count_exact(lo, hi, shape, count):
    m = Box(lo, hi).mask(shape)
    assert m.shape == shape
    assert int(m.sum()) == count


def test_box_mask_cells():
    m = Box((1, 2), (3, 4)).mask((4, 5))
    expected = np.zeros((4, 5), dtype=bool)
    expected[1:3, 2:4] = True
    assert_array_equal(m, expected)


# -- unions -----------------------------------------------------------------------------------


def test_union_is_or_of_masks():
    a = Sphere((5, 5), 3)
    b = Box((4, 0), (12, 6))
    shape = (12, 10)
    u = a | b
    assert isinstance(u, Union)
    assert_array_equal(u.mask(shape), a.mask(shape) | b.mask(shape))
    n_a, n_b = int(a.mask(shape).sum()), int(b.mask(shape).sum())
    n_ab = int((a.mask(shape) & b.mask(shape)).sum())
    assert n_ab > 0
    assert int(u.mask(shape).sum()) == n_a + n_b - n_ab


def test_union_flattens():
    a, b, c = Sphere((1, 1), 1), Box((0, 0), (1, 1)), Sphere((3, 3), 2)
    assert (a | b | c).shapes == (a, b, c)
    assert Union(Union(a, b), c).shapes == (a, b, c)
    assert Union(a).shapes == (a,)
    assert "Union" in repr(a | b)


def test_geometry_docstring_example():
    s = Sphere((4, 4), 2) | Box((0, 0), (8, 1))
    assert int(s.mask((8, 8)).sum()) == 20


# -- translation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "offset", "grid"),
    [
        (Sphere((6.0, 5.0), 2.5), (3, -2), (16, 14)),
        (Box((2.0, 3.0, 1.0), (5.0, 6.0, 4.0)), (4, 1, 2), (12, 10, 9)),
        (Sphere((5, 5, 5), 2) | Box((1, 1, 1), (3, 4, 2)), (2, 3, 1), (12, 12, 12)),
    ],
)
def test_translated_shifts_the_mask(shape, offset, grid):
    moved = shape.translated(offset)
    assert isinstance(moved, type(shape))
    m0, m1 = shape.mask(grid), moved.mask(grid)
    assert m1.sum() == m0.sum() > 0
    # integer offsets well inside the grid: the mask is the shifted mask
    assert_array_equal(m1, np.roll(m0, offset, axis=tuple(range(len(grid)))))


def test_translated_leaves_original_unchanged():
    s = Sphere((3.0, 3.0), 1.5)
    t = s.translated((0.5, 1.0))
    assert s.center == (3.0, 3.0)
    assert t.center == (3.5, 4.0)
    assert t.radius == s.radius
    b = Box((0, 0), (1, 2)).translated((1, 1))
    assert b.lo == (1.0, 1.0) and b.hi == (2.0, 3.0)


def test_translated_non_integer_offset_matches_fresh_shape():
    shape = (20, 20)
    assert_array_equal(
        Sphere((6.0, 7.0), 3.2).translated((2.25, 1.5)).mask(shape),
        Sphere((8.25, 8.5), 3.2).mask(shape),
    )


# -- paint ------------------------------------------------------------------------------------


def test_paint_returns_a_copy():
    flags = np.zeros((6, 6), dtype=np.int8)
    before = flags.copy()
    out = paint(flags, Box((1, 1), (3, 4)))
    assert_array_equal(flags, before)
    assert out is not flags
    assert out.dtype == np.int8
    assert int((out == CellType.SOLID).sum()) == 2 * 3
    assert_array_equal(out[1:3, 1:4], CellType.SOLID)
    out2 = paint(out, Sphere((5, 5), 1.0), CellType.AIR)
    assert int((out2 == CellType.AIR).sum()) == int(Sphere((5, 5), 1.0).mask((6, 6)).sum())
    assert int((out == CellType.AIR).sum()) == 0


def test_paint_accepts_lists():
    out = paint([[0, 0], [0, 0]], Box((0, 0), (1, 2)))
    assert_array_equal(out, [[1, 1], [0, 0]])


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [-1.0, 0.0, np.nan, np.inf])
def test_sphere_rejects_bad_radius(radius):
    with pytest.raises(ValueError, match="radius must be positive"):
        Sphere((1.0, 1.0), radius)


@pytest.mark.parametrize("center", [(1.0,), (1.0, 2.0, 3.0, 4.0), (1.0, np.nan), ()])
def test_sphere_rejects_bad_center(center):
    with pytest.raises(ValueError, match="center must be 2 or 3 finite coordinates"):
        Sphere(center, 1.0)


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        ((1.0, 1.0), (0.0, 2.0)),
        ((1.0, 1.0), (1.0, 2.0)),
        ((0, 0, 0), (1, 1, 0)),
    ],
)
def test_box_rejects_lo_not_below_hi(lo, hi):
    with pytest.raises(ValueError, match="Box needs lo < hi per axis"):
        Box(lo, hi)


def test_box_rejects_mismatched_corners():
    with pytest.raises(ValueError, match="Box lo and hi must have the same number of coordinates"):
        Box((0, 0), (1, 1, 1))


def test_translated_rejects_wrong_dimension():
    with pytest.raises(ValueError, match="offset must have 2 coordinates for a 2-D shape"):
        Sphere((1, 1), 1.0).translated((1, 1, 1))
    with pytest.raises(ValueError, match="offset must have 3 coordinates for a 3-D shape"):
        Box((0, 0, 0), (1, 1, 1)).translated((1, 1))


def test_box_rejects_bad_corner():
    with pytest.raises(ValueError, match="hi must be 2 or 3 finite coordinates"):
        Box((0, 0), (1, np.inf))


@pytest.mark.parametrize(
    ("shape", "grid", "match"),
    [
        (Sphere((1, 1), 1), (4, 4, 4), "a 2-D sphere cannot be rasterised on a 3-D grid"),
        (Sphere((1, 1, 1), 1), (4, 4), "a 3-D sphere cannot be rasterised on a 2-D grid"),
        (Box((0, 0), (1, 1)), (4, 4, 4), "a 2-D box cannot be rasterised on a 3-D grid"),
        (Box((0, 0), (1, 1)) | Sphere((1, 1, 1), 1), (4, 4), "3-D sphere"),
    ],
)
def test_mask_rejects_mismatched_dims(shape, grid, match):
    with pytest.raises(ValueError, match=match):
        shape.mask(grid)


def test_translated_rejects_bad_offset():
    with pytest.raises(ValueError, match="offset must be 2 or 3 finite coordinates"):
        Sphere((1, 1), 1).translated((1.0, np.nan))


def test_union_rejects_non_shapes():
    with pytest.raises(TypeError, match="Union takes Shape objects, got int"):
        Union(Sphere((1, 1), 1), 3)
    with pytest.raises(TypeError, match="Union takes Shape objects, got ndarray"):
        Union(np.ones((3, 3), dtype=bool))
    with pytest.raises(TypeError, match="Union takes Shape objects, got str"):
        Sphere((1, 1), 1) | "box"
    with pytest.raises(ValueError, match="Union needs at least one shape"):
        Union()
