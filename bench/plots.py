"""The report's PNG figures (matplotlib, Agg back-end: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

__all__ = ["bandwidth", "densities", "optimization", "pipeline_steps", "scaling"]

MARKERS = "os^vD<>pP*hX"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scaling(series: dict[str, tuple[Sequence[float], Sequence[float], float | None]],
            path: Path, *, title: str, ylabel: str) -> Path:
    """Log-log plot of ``y`` against unknowns per method, the fitted exponent in the legend.

    ``series`` maps a method label to ``(unknowns, values, exponent or None)``.
    """
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    for i, (label, (x, y, p)) in enumerate(series.items()):
        name = label if p is None else f"{label}  (N^{p:.2f})"
        ax.loglog(x, y, marker=MARKERS[i % len(MARKERS)], linestyle="-", label=name)
    ax.set_xlabel("unknowns N")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def pipeline_steps(panels: dict[str, dict[str, Sequence[float]]], path: Path) -> Path:
    """Pressure-solve time (set-up + solve) per simulation step, one panel per grid size."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items(), strict=True):
        for i, (label, times) in enumerate(lines.items()):
            ax.semilogy(range(1, len(times) + 1), [1e3 * t for t in times],
                        marker=MARKERS[i % len(MARKERS)], markersize=3, label=label)
        ax.set_title(title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("simulation step")
        ax.set_ylabel("pressure solve incl. set-up (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def bandwidth(groups: list[str], fractions: dict[str, list[float | None]], path: Path) -> Path:
    """Grouped bars: each kernel's bandwidth as a fraction of the same-run copy's."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) + 2), 3.8))
    width = 0.8 / max(len(fractions), 1)
    for i, (kernel, values) in enumerate(fractions.items()):
        xs = [g + (i - (len(fractions) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [v if v is not None else 0.0 for v in values], width, label=kernel)
    ax.axhline(1.0, color="k", linewidth=0.8)
    ax.axhline(0.7, color="r", linestyle="--", linewidth=0.8, label="target 0.7")
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("bandwidth / copy bandwidth")
    ax.set_title("Kernel bandwidth as a fraction of np.copyto (same run)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def densities(panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
              path: Path) -> Path:
    """SLQ densities over ``log10(lambda / lambda_max)``, one panel per problem, one
    curve per preconditioner (``label -> (grid, values)``)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    names = sorted({label.split()[0] for lines in panels.values() for label in lines})
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}  # one colour per M
    for ax, (title, lines) in zip(axes[0], panels.items(), strict=True):
        for label, (grid, values) in lines.items():
            if len(grid):
                ax.semilogy(grid, values, label=label, color=colors[label.split()[0]])
        ax.set_ylim(1e-4, None)
        ax.set_title(title)
        ax.set_xlabel("log10(lambda / lambda_max) of M^-1 A")
        ax.set_ylabel("SLQ density")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def optimization(panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
                 path: Path) -> Path:
    """Per problem, ``f - f*`` (top) and ``gamma_k`` (bottom) per outer iteration, one line
    per method (``label -> (gaps, gammas)``)."""
    fig, axes = plt.subplots(2, len(panels), figsize=(4.6 * len(panels), 6.0), squeeze=False)
    for col, (title, lines) in enumerate(panels.items()):
        top, bottom = axes[0][col], axes[1][col]
        for i, (label, (gaps, gammas)) in enumerate(lines.items()):
            marker = MARKERS[i % len(MARKERS)]
            top.semilogy(range(len(gaps)), gaps, marker=marker, markersize=3, label=label)
            if len(gammas):
                bottom.semilogy(range(len(gammas)), gammas, marker=marker, markersize=3,
                                label=label)
        top.set_title(title)
        top.set_ylabel("f - f*")
        bottom.set_ylabel("gamma_k")
        bottom.set_xlabel("outer iteration")
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, which="both", alpha=0.3)
        top.legend(fontsize=7)
    return _save(fig, path)
