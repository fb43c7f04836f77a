"""Cell codes shared by every kernel back-end (mirrors :class:`dcdm.problems.CellType`)."""

FLUID = 0
SOLID = 1
AIR = 2
