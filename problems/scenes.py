"""Ready-made grids: smoke tanks with random obstacles, empty tanks, thin baffles, and the
face-weighted scenes of issue 16 (two-phase bubbles, cut-cell obstacles).

Axis 1 is up. A smoke tank has zero-flux walls on the sides and the bottom,
AIR on its top layer when ``open_top`` (so the pressure system is SPD), and
random solid spheres and boxes kept clear of the top two layers and of the
smoke source at the bottom centre. :func:`two_phase` and :func:`cut_cells` are tanks
whose operator carries face weights (:mod:`dcdm.problems.faces`): ``1 / rho`` across a
density jump of ``ratio``, or the open fraction of each face cut by solid spheres.

Examples
--------
>>> from dcdm.problems import scenes
>>> g = scenes.smoke((32, 32, 32), obstacles=4, seed=1)
>>> g.shape, g.is_singular
((32, 32, 32), False)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from . import faces
from .geometry import Box, Shape, Sphere, Union
from .grid import CellType, Grid

__all__ = ["baffles", "cut_cells", "face_fractions", "random_obstacles", "random_spheres",
           "smoke", "tank", "two_phase"]


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 4:
        raise ValueError(f"shape must be 2 or 3 sizes, each >= 4, got {shape}")
    return shape


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def tank(shape: Sequence[int], *, open_top: bool = True, spacing: float = 1.0) -> Grid:
    """An empty tank: all FLUID, walls on every side, AIR on the top layer if ``open_top``."""
    shape = _check_shape(shape)
    flags = np.full(shape, CellType.FLUID, dtype=np.int8)
    if open_top:
        flags[:, -1, ...] = CellType.AIR
    return Grid(flags, spacing=spacing)


def random_obstacles(shape: Sequence[int], k: int, rng: np.random.Generator) -> Shape | None:
    """``k`` random spheres and boxes inside ``shape``, away from the top and the source."""
    shape = _check_shape(shape)
    ndim = len(shape)
    n = min(shape)
    parts: list[Shape] = []
    source = Box(
        tuple(0.35 * s if a != 1 else 0.0 for a, s in enumerate(shape)),
        tuple(0.65 * s if a != 1 else 0.2 * shape[1] for a, s in enumerate(shape)),
    )
    attempts = 0
    while len(parts) < k and attempts < 50 * max(k, 1):
        attempts += 1
        size = max(rng.uniform(0.06, 0.14) * n, 1.0)
        centre = [rng.uniform(size, max(s - size, size)) for s in shape]
        centre[1] = rng.uniform(0.25 * shape[1], max(shape[1] - 3 - size, 0.25 * shape[1]))
        if rng.random() < 0.5:
            cand: Shape = Sphere(tuple(centre), size)
        else:
            half = rng.uniform(0.5, 1.0, size=ndim) * size
            cand = Box(tuple(c - h for c, h in zip(centre, half, strict=False)),
                       tuple(c + h for c, h in zip(centre, half, strict=False)))
        cells = cand.mask(shape)
        if not cells.any() or (cells & source.mask(shape)).any():
            continue
        parts.append(cand)
    return Union(*parts) if parts else None


def _sealed(grid: Grid, keep_largest: bool) -> np.ndarray:
    """The FLUID cells of the grid's closed (all-Neumann) regions, grid-shaped; with
    ``keep_largest``, without the largest of them."""
    labels = grid.nullspace.labels.reshape(grid.shape)
    sealed = labels >= 0
    if keep_largest:
        sealed &= labels != np.argmax(np.bincount(labels[labels >= 0]))
    return sealed


def smoke(
    shape: Sequence[int],
    obstacles: int = 8,
    seed: int | None = 0,
    open_top: bool = True,
    spacing: float = 1.0,
) -> Grid:
    """A smoke tank with ``obstacles`` random solid spheres/boxes.

    Parameters
    ----------
    shape : sequence of int
        Grid size, 2-D or 3-D, each axis >= 4.
    obstacles : int, default 8
        Number of solids.
    seed : int or None
        Seed of the obstacle layout (same seed, same scene).
    open_top : bool, default True
        AIR on the top layer (SPD system: fluid pockets that obstacles seal off
        from the air are filled with SOLID); ``False`` gives a closed box (singular).
    spacing : float
        Cell size.

    Returns
    -------
    Grid
    """
    _check_count("obstacles", obstacles)
    g = tank(shape, open_top=open_top, spacing=spacing)
    flags = np.array(g.flags)
    solids = random_obstacles(g.shape, int(obstacles), np.random.default_rng(seed))
    if solids is not None:
        m = solids.mask(g.shape)
        m[:, -2:, ...] = False
        flags[m] = CellType.SOLID
    grid = Grid(flags, spacing=spacing)
    if open_top and grid.is_singular:
        # obstacles sealed off a pocket of fluid from the air: fill it, so an open tank
        # is always SPD (a real smoke solver would see no flow there either)
        flags[_sealed(grid, keep_largest=False)] = CellType.SOLID
        grid = Grid(flags, spacing=spacing)
    return grid


def baffles(shape: Sequence[int], walls: int = 3, opening: int = 2, open_top: bool = True,
            spacing: float = 1.0) -> Grid:
    """A tank divided by ``walls`` one-cell-thick baffles, joined only through small openings.

    The baffles stand across axis 0 at ``round((k + 1) n_0 / (walls + 1))``, through the whole
    height and depth, each with one ``opening``-cell square hole (a slot in 2-D), alternately
    at the bottom and at the top (a serpentine path), centred along axis 2. With
    ``open_top`` the top layer of the *last* compartment only is AIR (the outlet): every other
    compartment reaches the air through the openings alone, so the pressure couples across the
    tank through a few cells, which a coarse grid that does not see the baffles misses (issue
    16's thin-wall case).

    Parameters
    ----------
    shape : sequence of int
        Grid size, 2-D or 3-D, each axis >= 4; axis 0 needs room for the compartments
        (``shape[0] >= 2 walls + 1``).
    walls : int, default 3
        Number of baffles (>= 1).
    opening : int, default 2
        Side of each hole in cells (``1 <= opening <= shape[1] - 2``).
    open_top : bool, default True
        AIR on the top layer of the last compartment (SPD); ``False``: a closed box.
    spacing : float
        Cell size.

    Returns
    -------
    Grid

    Examples
    --------
    >>> from dcdm.problems import scenes
    >>> g = scenes.baffles((16, 8), walls=3, opening=1)
    >>> print("\\n".join("|" + "".join(".#~"[c] for c in row) for row in g.flags.T[::-1]))
    |....#.......#~~~
    |....#...#...#...
    |....#...#...#...
    |....#...#...#...
    |....#...#...#...
    |....#...#...#...
    |....#...#...#...
    |........#.......
    """
    shape = _check_shape(shape)
    for name, value, low in (("walls", walls, 1), ("opening", opening, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if shape[0] < 2 * walls + 1:
        raise ValueError(f"shape[0] = {shape[0]} leaves no room for {walls} walls between "
                         f"compartments; it must be >= {2 * walls + 1}")
    if opening > shape[1] - 2 or (len(shape) == 3 and opening > shape[2]):
        raise ValueError(f"opening must fit the wall: at most {shape[1] - 2} cells, got "
                         f"{opening}")
    flags = np.full(shape, CellType.FLUID, dtype=np.int8)
    positions = [round((k + 1) * shape[0] / (walls + 1)) for k in range(walls)]
    for k, i in enumerate(positions):
        flags[i] = CellType.SOLID
        rows = slice(0, opening) if k % 2 == 0 else slice(shape[1] - opening, shape[1])
        if len(shape) == 2:
            flags[i, rows] = CellType.FLUID
        else:
            start = (shape[2] - opening) // 2
            flags[i, rows, start:start + opening] = CellType.FLUID
    if open_top:
        flags[positions[-1] + 1:, -1, ...] = CellType.AIR
    return Grid(flags, spacing=spacing)


def random_spheres(shape: Sequence[int], k: int, rng: np.random.Generator,
                   radii: tuple[float, float] = (0.05, 0.15)) -> list[Sphere]:
    """``k`` random spheres (discs in 2-D) inside a tank of ``shape``, below its top two layers.

    Radii are drawn from ``radii`` (fractions of ``min(shape)``), at least one cell (so each
    sphere holds a cell centre) and at most half the room below the top two layers; centres
    keep every sphere inside the tank. Spheres may overlap.
    """
    shape = _check_shape(shape)
    room = shape[1] - 2  # the top two layers stay clear (the AIR layer and the one below it)
    out = []
    for _ in range(k):
        r = min(max(rng.uniform(*radii) * min(shape), 1.0), room / 2)
        centre = [rng.uniform(r, s - r) for s in shape]
        centre[1] = rng.uniform(r, room - r)
        out.append(Sphere(tuple(centre), r))
    return out


def two_phase(
    shape: Sequence[int],
    ratio: float = 1000.0,
    bubbles: int = 8,
    seed: int | None = 0,
    open_top: bool = True,
    spacing: float = 1.0,
) -> Grid:
    """A tank of heavy liquid (density ``ratio``) holding ``bubbles`` light bubbles (density 1).

    The variable-density pressure operator ``-div(grad p / rho)``: face weights
    ``1 / rho_f`` (:func:`dcdm.problems.faces.from_density`), so ``1 / ratio`` in the liquid,
    1 inside the bubbles, ``2 / (1 + ratio)`` across their surfaces. The bubbles are random
    spheres (discs in 2-D, :func:`random_spheres`), radii 5-15% of the smallest side, inside
    the tank and below its top two layers; the top layer (AIR when ``open_top``) takes the
    liquid's density. Every cell is FLUID but the AIR layer: the density jump, not the
    geometry, is what makes the system hard (issue 16).

    Parameters
    ----------
    shape : sequence of int
        Grid size, 2-D or 3-D, each axis >= 4.
    ratio : float, default 1000.0
        Liquid density over bubble density (water/air ~ 1000), finite and >= 1.
    bubbles : int, default 8
        Number of bubbles (>= 0); overlapping ones merge.
    seed : int or None
        Seed of the bubble layout (same seed, same scene).
    open_top : bool, default True
        AIR on the top layer (SPD); ``False``: a closed box (singular, constants).
    spacing : float
        Cell size.

    Returns
    -------
    Grid

    Examples
    --------
    >>> from dcdm.problems import scenes
    >>> g = scenes.two_phase((16, 16), ratio=100.0, bubbles=2, seed=0)
    >>> sorted({round(float(w), 4) for w in g.face_weights[0].ravel()})
    [0.01, 0.0198, 1.0]
    >>> g.is_singular
    False
    """
    _check_count("bubbles", bubbles)
    if (isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.integer, np.floating))
            or not np.isfinite(ratio) or ratio < 1):
        raise ValueError(f"ratio must be a finite number >= 1 (liquid over bubble density), "
                         f"got {ratio!r}")
    g = tank(shape, open_top=open_top, spacing=spacing)
    rho = np.full(g.shape, float(ratio))
    for sphere in random_spheres(g.shape, int(bubbles), np.random.default_rng(seed)):
        rho[sphere.mask(g.shape)] = 1.0
    return Grid(g.flags, spacing=spacing, face_weights=faces.from_density(rho))


def face_fractions(shape: Sequence[int], spheres: Sequence[Sphere],
                   samples: int | None = None) -> tuple[np.ndarray, ...]:
    """The open fraction of every face of a grid of ``shape`` that ``spheres`` cut.

    Each face is supersampled on a ``samples``-per-side lattice of points at the centres of
    equal sub-faces (default 8 along a 2-D face, 4 x 4 on a 3-D face); its fraction is the
    share of points outside every sphere (a point on a sphere's surface counts as open). The
    result is laid out as :mod:`dcdm.problems.faces` says (one array per axis, both
    domain-boundary faces included), in multiples of ``1 / samples**(ndim - 1)``.

    Examples
    --------
    >>> from dcdm.problems import Sphere, scenes
    >>> w0, w1 = scenes.face_fractions((4, 4), [Sphere((2.0, 2.0), 1.5)])
    >>> w0[1:4].tolist()  # the faces at x = 1, 2, 3 (exactly open: 0.88, 0.5, 0.88 at the ends)
    [[0.875, 0.0, 0.0, 0.875], [0.5, 0.0, 0.0, 0.5], [0.875, 0.0, 0.0, 0.875]]
    """
    shape = _check_shape(shape)
    ndim = len(shape)
    samples = (8 if ndim == 2 else 4) if samples is None else samples
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    for s in spheres:
        if not isinstance(s, Sphere) or len(s.center) != ndim:
            raise ValueError(f"spheres must be {ndim}-D Sphere objects, got {s!r}")
    offsets = (np.arange(samples) + 0.5) / samples
    fractions = []
    for axis, fshape in enumerate(faces.face_shapes(shape)):
        open_points = np.zeros(fshape, dtype=np.int32)
        for tangential in itertools.product(offsets, repeat=ndim - 1):
            # sample point of face index i: x_axis = i_axis, x_b = i_b + offset_b (b != axis)
            shift = list(tangential)
            shift.insert(axis, 0.0)
            covered = np.zeros(fshape, dtype=bool)
            for s in spheres:
                box = tuple(slice(max(int(np.floor(c - s.radius - o)), 0),
                                  min(int(np.ceil(c + s.radius - o)) + 1, m))
                            for c, o, m in zip(s.center, shift, fshape, strict=True))
                if any(b.start >= b.stop for b in box):
                    continue
                d2 = sum(((np.arange(b.start, b.stop) + o - c) ** 2).reshape(
                    [-1 if k == a else 1 for k in range(ndim)])
                    for a, (b, o, c) in enumerate(zip(box, shift, s.center, strict=True)))
                covered[box] |= d2 < s.radius ** 2
            open_points += ~covered
        fractions.append(open_points / samples ** (ndim - 1))
    return tuple(fractions)


def cut_cells(
    shape: Sequence[int],
    obstacles: int = 8,
    seed: int | None = 0,
    open_top: bool = True,
    spacing: float = 1.0,
) -> Grid:
    """A tank with ``obstacles`` random solid spheres cut into the grid by face fractions.

    The variational pressure projection of Batty, Bertails & Bridson (SIGGRAPH 2007): the
    weight of every face is its open (non-solid) fraction (:func:`face_fractions`,
    :func:`dcdm.problems.faces.from_fractions`), so a curved wall cuts through cells instead
    of rounding to whole ones. The rule for cells: a cell all of whose faces are closed
    (fraction 0) is SOLID; every other cell stays FLUID, a cut cell if its centre lies in a
    solid. Pockets of fluid that closed faces seal off are filled with SOLID: in an open tank
    those the AIR cannot reach (so the system is SPD), in a closed one all but the largest
    region (so no FLUID row is empty).

    Parameters
    ----------
    shape : sequence of int
        Grid size, 2-D or 3-D, each axis >= 4.
    obstacles : int, default 8
        Number of solid spheres (discs in 2-D), radii 6-14% of the smallest side (at
        least one cell), inside the tank and below its top two layers (:func:`random_spheres`).
    seed : int or None
        Seed of the layout (same seed, same scene).
    open_top : bool, default True
        AIR on the top layer (SPD); ``False``: a closed box (singular).
    spacing : float
        Cell size.

    Returns
    -------
    Grid

    Examples
    --------
    >>> from dcdm.problems import scenes
    >>> g = scenes.cut_cells((16, 16), obstacles=2, seed=0)
    >>> bool(((g.face_weights[0] > 0) & (g.face_weights[0] < 1)).any()), g.is_singular
    (True, False)
    """
    _check_count("obstacles", obstacles)
    g = tank(shape, open_top=open_top, spacing=spacing)
    rng = np.random.default_rng(seed)
    fractions = face_fractions(g.shape, random_spheres(g.shape, int(obstacles), rng,
                                                       radii=(0.06, 0.14)))
    closed = np.ones(g.shape, dtype=bool)
    for a, w in enumerate(fractions):
        n = g.shape[a]
        closed &= (np.take(w, range(n), axis=a) == 0) & (np.take(w, range(1, n + 1), axis=a) == 0)
    flags = np.array(g.flags)
    flags[closed & (flags == CellType.FLUID)] = CellType.SOLID
    weights = faces.from_fractions(fractions)
    grid = Grid(flags, spacing=spacing, face_weights=weights)
    if grid.is_singular:
        sealed = _sealed(grid, keep_largest=not open_top)  # closed: keep the tank's body
        if sealed.any():
            flags[sealed] = CellType.SOLID
            grid = Grid(flags, spacing=spacing, face_weights=weights)
    return grid
