"""Read pytest-benchmark JSON files into flat records, group them, fit growth exponents.

A record is one benchmark's ``extra_info`` (the schema of ``bench/conftest.py``:
``key``, ``kind``, ``method``, ``preconditioner``, ``problem``, ``dim``, ``n``,
``unknowns``, ``dtype``, ``device``, ``iterations``, ``reason``, ``residual``, ...)
plus its timing statistics (``median``, ``mean``, ``min``, ``stddev``, ``rounds``) and
its pytest ``name``. Files from older suites without the schema still load: their
records get ``kind="other"`` and are only used by the before/after comparison.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Results", "fit_exponent", "group_by", "label_of", "load", "on_gpu",
           "problem_title"]

STAT_FIELDS = ("median", "mean", "min", "max", "stddev", "rounds", "iqr")
PROBLEM_TITLES = {
    ("poisson", 3): "Dirichlet Poisson cube (3-D)",
    ("poisson", 2): "Dirichlet Poisson square (2-D)",
    ("smoke", 3): "Smoke tank, 8 obstacles (3-D)",
    ("smoke", 2): "Smoke tank, 8 obstacles (2-D)",
    ("baffles", 3): "Baffle tank, 3 one-cell walls with 2 x 2 openings (3-D)",
    ("baffles", 2): "Baffle tank, 3 one-cell walls with 2-cell openings (2-D)",
    ("twophase", 3): "Two-phase tank, 8 bubbles at 1000:1 density (3-D)",
    ("twophase", 2): "Two-phase tank, 8 bubbles at 1000:1 density (2-D)",
    ("cutcell", 3): "Cut-cell tank, 8 spheres cut by face fractions (3-D)",
    ("cutcell", 2): "Cut-cell tank, 8 discs cut by face fractions (2-D)",
}


@dataclass
class Results:
    """Benchmarks of one or more JSON files, merged (a later file wins on a repeated key)."""

    records: list[dict]
    meta: list[dict] = field(default_factory=list)  # per file: machine, commit, date, dcdm
    paths: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # keys found in more than one file

    def select(self, **where) -> list[dict]:
        """Records whose fields equal every ``where`` value."""
        return [r for r in self.records if all(r.get(k) == v for k, v in where.items())]

    def by_key(self) -> dict[str, dict]:
        return {r["key"]: r for r in self.records}

    @property
    def suite_wall_s(self) -> float | None:
        walls = [(m.get("dcdm") or {}).get("suite_wall_s") for m in self.meta]
        walls = [w for w in walls if w is not None]
        return float(sum(walls)) if walls else None


def _flatten(bench: dict) -> dict:
    info = dict(bench.get("extra_info") or {})
    stats = bench.get("stats") or {}
    row = {k: info.get(k) for k in ("key", "kind")}
    row.update(info)
    row["key"] = info.get("key") or bench.get("fullname") or bench.get("name")
    row["kind"] = info.get("kind") or "other"
    row["name"] = bench.get("name")
    row["fullname"] = bench.get("fullname")
    for k in STAT_FIELDS:
        row[k] = stats.get(k)
    return row


def load(paths: Sequence[str | Path]) -> Results:
    """Load and merge pytest-benchmark JSON files.

    Raises
    ------
    ValueError
        If a file is not pytest-benchmark output (no ``benchmarks`` list).
    """
    merged: dict[str, dict] = {}
    meta, replaced = [], []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
            raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list); "
                             "write one with `pytest bench --benchmark-json=FILE`")
        meta.append({k: data.get(k) for k in ("machine_info", "commit_info", "datetime",
                                               "version", "dcdm")} | {"path": str(path)})
        for bench in data["benchmarks"]:
            row = _flatten(bench)
            if row["key"] in merged:
                replaced.append(row["key"])
            merged[row["key"]] = row
    return Results(list(merged.values()), meta, [str(p) for p in paths], replaced)


def group_by(records: Iterable[dict], key: Callable[[dict], tuple],
             order: Callable[[tuple], object] | None = None) -> dict[tuple, list[dict]]:
    """``records`` grouped by ``key(r)`` (first-seen order within a group), the groups
    sorted by ``order(group key)`` (default: the group key itself)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[key(r)].append(r)
    return dict(sorted(groups.items(), key=lambda kv: kv[0] if order is None else order(kv[0])))


def label_of(r: dict) -> str:
    """The method's column name: ``label`` if recorded, else method+preconditioner."""
    if r.get("label"):
        return str(r["label"])
    m, p = r.get("method") or "?", r.get("preconditioner")
    return m if p in (None, "none") else f"{m}+{p}"


def on_gpu(r: dict) -> bool:
    """Whether a record was measured on a GPU (``device`` ``"cuda"`` or ``"cuda:N"``)."""
    return str(r.get("device") or "").startswith("cuda")


def problem_title(problem: str, dim: int) -> str:
    return PROBLEM_TITLES.get((problem, dim), f"{problem} ({dim}-D)")


def fit_exponent(x: Iterable[float], y: Iterable[float]) -> float | None:
    """Slope ``p`` of the least-squares line through ``(log x, log y)``: ``y ~ x^p``.

    ``None`` with fewer than two usable (positive, finite) points.

    Examples
    --------
    >>> round(fit_exponent([1e3, 1e4, 1e5], [2.0, 20.0, 200.0]), 6)
    1.0
    """
    pts = [(float(a), float(b)) for a, b in zip(x, y, strict=True)
           if a is not None and b is not None and a > 0 and b > 0
           and math.isfinite(a) and math.isfinite(b)]
    if len({a for a, _ in pts}) < 2:
        return None
    lx, ly = np.log([a for a, _ in pts]), np.log([b for _, b in pts])
    slope, _ = np.polyfit(lx, ly, 1)
    return float(slope)
