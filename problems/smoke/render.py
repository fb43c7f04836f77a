"""Pictures of a smoke run: density frames (PNG), a GIF of them, a per-step solver plot.

Needs matplotlib (the ``dev`` extra) and Pillow (a matplotlib dependency);
both load when a picture is drawn. Frames put axis 1 (up) vertical. A 3-D
frame has two panels: the slice through the middle of axis 2 (depth) and the
maximum of the density along axis 2; solids are drawn in blue (in the
projection, where any cell along the line of sight is solid, half blended).

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from dcdm.problems.smoke.render import FrameWriter
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> w = FrameWriter(folder, ndim=2)
>>> path = w.write(np.zeros((8, 8)), np.zeros((8, 8), dtype=np.int8), "step 0")
>>> path.name, w.close()
('frame_0000.png', None)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..grid import CellType

__all__ = ["FrameWriter", "density_views", "plot_records", "write_gif"]

SOLID_RGB = np.array([0.30, 0.45, 0.75])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def density_views(density: np.ndarray, flags: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """RGB images (rows = axis 1 from the top) of the density with solids marked.

    Returns ``[(title, rgb), ...]``: one view in 2-D, the mid-slice and the
    max-projection along axis 2 in 3-D.
    """
    from matplotlib import colormaps

    cmap = colormaps["inferno"]
    solid = flags == CellType.SOLID

    def rgb(d: np.ndarray, s: np.ndarray, blend: float) -> np.ndarray:
        img = cmap(np.clip(d, 0.0, 1.0))[..., :3]
        img[s] = (1 - blend) * img[s] + blend * SOLID_RGB
        return np.flipud(np.swapaxes(img, 0, 1))  # axis 1 up, axis 0 to the right

    if density.ndim == 2:
        return [("density", rgb(density, solid, 1.0))]
    k = density.shape[2] // 2
    return [
        (f"density, slice z = {k}", rgb(density[:, :, k], solid[:, :, k], 1.0)),
        ("density, max along z", rgb(density.max(axis=2), solid.any(axis=2), 0.5)),
    ]


class FrameWriter:
    """Draw one PNG per call into ``folder`` (``frame_0000.png``, ...) with one figure reused.

    Parameters
    ----------
    folder : path
        Created if missing.
    ndim : {2, 3}
        Panels: one in 2-D, two in 3-D.
    dpi : int
        Resolution of the saved frames.
    """

    def __init__(self, folder, ndim: int, dpi: int = 80):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        plt = _pyplot()
        panels = 1 if ndim == 2 else 2
        self.fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.4), squeeze=False)
        self.axes = list(axes[0])
        self.images: list[Any] = []
        self.dpi = dpi
        self.paths: list[Path] = []

    def write(self, density: np.ndarray, flags: np.ndarray, title: str = "") -> Path:
        """Draw the density (and solids) and save the next frame; returns its path."""
        views = density_views(density, flags)
        if not self.images:
            for ax, (name, img) in zip(self.axes, views, strict=True):
                self.images.append(ax.imshow(img, interpolation="nearest"))
                ax.set_title(name, fontsize=10)
                ax.set_xticks([])
                ax.set_yticks([])
            self.fig.tight_layout(rect=(0, 0, 1, 0.93))
        else:
            for im, (_, img) in zip(self.images, views, strict=True):
                im.set_data(img)
        self.fig.suptitle(title, fontsize=10)
        path = self.folder / f"frame_{len(self.paths):04d}.png"
        self.fig.savefig(path, dpi=self.dpi)
        self.paths.append(path)
        return path

    def close(self) -> None:
        _pyplot().close(self.fig)


def write_gif(frames: Sequence[Path], path, fps: float = 15.0, max_frames: int = 120) -> Path:
    """Animate PNG ``frames`` into a looping GIF (every k-th frame if there are more than
    ``max_frames``); returns ``path``."""
    from PIL import Image

    if not frames:
        raise ValueError("write_gif needs at least one frame")
    stride = max(1, -(-len(frames) // max_frames))
    picked = list(frames[::stride])
    if picked[-1] != frames[-1]:
        picked.append(frames[-1])
    images = [Image.open(f).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
              for f in picked]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                   duration=int(1000 * stride / fps), optimize=True)
    for im in images:
        im.close()
    return path


def plot_records(records: Sequence[dict], path, compare_steps: Sequence[int] = (),
                 title: str = "") -> Path:
    """Per-step solver iterations (top) and times (bottom: advection, solver set-up,
    solve, whole step) as a PNG; ``compare_steps`` are marked. Returns ``path``."""
    plt = _pyplot()
    steps = np.array([r["step"] for r in records])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(steps, [r["iterations"] for r in records], ".-", color="C0")
    ax1.set_ylabel("solver iterations")
    ax1.set_ylim(bottom=0)
    for key, label, color in (("advect_time", "advection", "C2"),
                              ("setup_time", "solver set-up", "C1"),
                              ("solve_time", "solve", "C0"),
                              ("step_time", "whole step", "0.4")):
        ax2.plot(steps, [1e3 * r[key] for r in records], ".-", label=label, color=color, ms=3)
    ax2.set_ylabel("ms per step")
    ax2.set_xlabel("time step")
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="upper right", fontsize=8, ncol=4)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        for s in compare_steps:
            ax.axvline(s, color="0.7", lw=0.8, ls="--")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
