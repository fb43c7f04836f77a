"""Ready-made flag grids: smoke tanks with random obstacles, empty tanks.

Axis 1 is up. A smoke tank has zero-flux walls on the sides and the bottom,
AIR on its top layer when ``open_top`` (so the pressure system is SPD), and
random solid spheres and boxes kept clear of the top two layers and of the
smoke source at the bottom centre.

Examples
--------
>>> from dcdm.problems import scenes
>>> g = scenes.smoke((32, 32, 32), obstacles=4, seed=1)
>>> g.shape, g.is_singular
((32, 32, 32), False)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .geometry import Box, Shape, Sphere, Union
from .grid import CellType, Grid

__all__ = ["baffles", "random_obstacles", "smoke", "tank"]


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 4:
        raise ValueError(f"shape must be 2 or 3 sizes, each >= 4, got {shape}")
    return shape


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
    if isinstance(obstacles, bool) or not isinstance(obstacles, (int, np.integer)) or obstacles < 0:
        raise ValueError(f"obstacles must be an integer >= 0, got {obstacles!r}")
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
        flags[grid.nullspace.labels.reshape(grid.shape) >= 0] = CellType.SOLID
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
