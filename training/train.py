"""Train the DCDM network: ``train(TrainConfig(...)) -> TrainResult`` (CLI: ``dcdm train``).

One run: seeded scenes (training and held-out validation), the data mix of
:mod:`dcdm.training.data`, Adam with a geometric learning-rate decay per epoch,
the loss of :mod:`dcdm.training.loss`. After every epoch it writes a checkpoint,
``OUT/checkpoint-EEEEE.safetensors`` + ``.json`` (:mod:`dcdm.training.checkpoint`:
model, Adam state, torch RNG states, epoch/step counters and the histories), so
``resume=True`` continues bit for bit where it stopped, even after a kill in the
middle of a write. Every ``validate_every`` epochs (and after the
last) the network is run inside the DCDM solver on the validation scenes and
the best checkpoint by solver iterations is written to ``OUT/best``; the last
weights go to ``OUT/final`` and the loss curve to ``OUT/loss.png``.

Checkpoints are selected by the solver, not by the loss: the calibration in
``reference/dcdm.md`` saw a net with a much worse loss be the only one that
converged. If :mod:`dcdm.solvers.dcdm` is not importable the validation loss is
used instead (logged, and recorded as ``validation_metric``).

A step whose loss is not finite, or that leaves non-finite weights, stops the run with
:class:`TrainingDivergedError` before anything is written: the last checkpoint and the
best weights stay those of the last good epoch.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcdm.kernels.optional import maybe

from . import checkpoint, weights
from .config import TrainConfig
from .data import Dataset, build_dataset, make_scenes, random_rhs, solve_samples
from .loss import dcdm_loss
from .model import DCDMNet
from .torch_ops import GridOperator
from .validate import solver_available, validation_runs

__all__ = ["TrainConfig", "TrainResult", "TrainingDivergedError", "train"]

log = logging.getLogger(__name__)


class TrainingDivergedError(FloatingPointError, ValueError):
    """The loss or the weights turned non-finite (also a ``ValueError``: the CLI reports it
    in one line)."""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    best_path, final_path, checkpoint_path : Path
        ``.safetensors`` files (each with its ``.json`` meta); the checkpoint is the
        run's last, ``OUT/checkpoint-EEEEE``.
    plot_path : Path or None
        The loss-curve PNG (None if matplotlib is missing).
    loss_history : tuple of float
        Training loss of every step.
    epoch_loss : tuple of float
        Mean training loss per epoch.
    validation_history : tuple of dict
        Per validation: ``epoch``, ``loss``, and with the solver ``iterations``
        (effective, see :func:`~dcdm.training.validate.validate`), ``converged``
        (fraction) and ``solver_seconds``.
    validation_metric : str
        ``"iterations"`` or ``"loss"`` (what picked the best checkpoint).
    best_epoch : int
    wall_time : float
        Seconds, summed over resumed runs.
    """

    best_path: Path
    final_path: Path
    checkpoint_path: Path
    plot_path: Path | None
    loss_history: tuple[float, ...]
    epoch_loss: tuple[float, ...]
    validation_history: tuple[dict, ...]
    validation_metric: str
    best_epoch: int
    wall_time: float


def _lr(config: TrainConfig, epoch: int) -> float:
    """Geometric decay from ``lr`` (first epoch) to ``lr_final`` (last)."""
    t = epoch / max(config.epochs - 1, 1)
    return config.lr * (config.lr_final / config.lr) ** min(t, 1.0)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


# -- data (cached in OUT so a resumed run trains on the very same bytes) -----------------------
_DATA_FIELDS = ("dim", "n", "scenes", "obstacles", "ritz", "random", "smooth", "residual",
                "lanczos_m", "theta", "residual_methods", "seed")


def _data(config: TrainConfig, split, out: Path, progress: bool) -> Dataset:
    key = {k: config.to_dict()[k] for k in _DATA_FIELDS}
    solutions = config.loss == "energy"
    key["solutions"] = solutions
    path = out / "data.safetensors"
    if config.cache_data and path.exists():
        try:
            cached = weights.load_dataset(path, key)
        except ValueError as exc:
            log.warning("ignoring the cached data (%s); regenerating", exc)
        else:
            if cached is not None:
                log.info("reusing the training data in %s", path)
                return cached
    data = build_dataset(split.train, config.data_mix(), seed=config.seed,
                         max_bytes=config.max_bytes, progress=progress, solutions=solutions)
    if config.cache_data:
        weights.save_dataset(path, data, key)
    return data


def _validation_data(config: TrainConfig, split) -> Dataset:
    """Random and smooth right-hand sides on the validation scenes (for the loss)."""
    rng = np.random.default_rng([config.seed, 0x7A1])
    bs, scene = [], []
    for s, g in enumerate(split.validation):
        for kind in ("random", "smooth"):
            bs.append(random_rhs(g, max(config.validation_rhs, 1), rng, kind))
            scene += [s] * len(bs[-1])
    b_np = np.concatenate(bs)
    e = None
    if config.loss == "energy":
        e_np = np.concatenate([solve_samples(split.validation[s], b_np[i:i + 1])
                               for i, s in enumerate(scene)])
        e = torch.from_numpy(e_np).view(len(scene), 1, *config.shape)
    b = torch.from_numpy(b_np).view(len(scene), 1, *config.shape)
    return Dataset(b, torch.tensor(scene), torch.zeros(len(scene), dtype=torch.int64),
                   np.stack([g.flags for g in split.validation]), e=e)


def _loss(model, b, scene, op: GridOperator, config: TrainConfig, e=None) -> torch.Tensor:
    return dcdm_loss(model(b), b, lambda x: op(x, scene), mode=config.loss,
                     cos_weight=config.cos_weight, scale_weight=config.scale_weight,
                     fluid=op.fluid(scene) if config.cos_weight else None, e=e)


def _batch(data: Dataset, idx, device, fmt=torch.contiguous_format):
    """``(b, scene, e)`` of the samples ``idx`` on ``device`` (``e`` None without solutions)."""
    b = data.b[idx].to(device).contiguous(memory_format=fmt)
    e = None if data.e is None else data.e[idx].to(device).contiguous(memory_format=fmt)
    return b, data.scene[idx].to(device), e


@torch.no_grad()
def _eval_loss(model, data: Dataset, op: GridOperator, config: TrainConfig, device) -> float:
    total = 0.0
    for i in range(0, len(data), config.batch_size):
        b, scene, e = _batch(data, slice(i, i + config.batch_size), device)
        total += float(_loss(model, b, scene, op, config, e)) * len(b)
    return total / max(len(data), 1)


# -- the loss curve --------------------------------------------------------------------------
def _plot(path: Path, state: dict, metric: str) -> Path | None:
    agg, figure = maybe("matplotlib.backends.backend_agg"), maybe("matplotlib.figure")
    if agg is None or figure is None:
        log.warning("matplotlib is not installed: no loss curve")
        return None
    fig = figure.Figure(figsize=(9, 3.6))
    agg.FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2)
    steps = np.arange(1, len(state["loss"]) + 1)
    ax.semilogy(steps, state["loss"], lw=0.5, alpha=0.5, label="step")
    per_epoch = len(state["loss"]) / max(len(state["epoch_loss"]), 1)
    ax.semilogy(per_epoch * np.arange(1, len(state["epoch_loss"]) + 1), state["epoch_loss"],
                "o-", label="epoch mean")
    val = state["validation"]
    ax.semilogy([per_epoch * v["epoch"] for v in val], [v["loss"] for v in val], "s-",
                label="validation")
    ax.set(xlabel="step", ylabel="loss", title="DCDM loss")
    ax.legend()
    if metric == "iterations":
        ax2.plot([v["epoch"] for v in val], [v["iterations"] for v in val], "s-")
        ax2.set(ylabel="effective DCDM iterations (validation)")
    else:
        ax2.semilogy([v["epoch"] for v in val], [v["loss"] for v in val], "s-")
        ax2.set(ylabel="validation loss")
    ax2.set(xlabel="epoch", title="checkpoint selection")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# -- the loop ------------------------------------------------------------------------------
def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a DCDM network (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
    resume : bool
        Continue from ``OUT/checkpoint`` if it exists (the config must match it,
        except for the fields in :data:`~dcdm.training.config.RESUME_MAY_CHANGE`,
        e.g. ``epochs``). Without ``resume`` an existing checkpoint is overwritten.
    progress : bool
        tqdm progress bars.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingDivergedError
        A step's loss, or the weights after it, are not finite (nothing of that epoch
        is written).
    ValueError
        ``resume`` with a config that differs from the checkpoint's, or a damaged checkpoint.
    """
    tqdm = maybe("tqdm.auto") if progress else None  # progress bars are a nicety
    start = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    split = make_scenes(config.shape, config.scenes, config.validation_scenes,
                        config.obstacles, seed=config.seed)
    t_data = time.perf_counter()
    data = _data(config, split, out, progress)
    log.info("training data: %d samples on %d scenes in %.1f s", len(data), len(split.train),
             time.perf_counter() - t_data)
    val_data = _validation_data(config, split) if split.validation else None
    op = GridOperator.from_grids(split.train, device)
    val_op = GridOperator.from_grids(split.validation, device) if split.validation else None

    # channels_last routes the convs to oneDNN: ~1.4x faster training steps on this CPU
    fmt = torch.channels_last if config.dim == 2 else torch.channels_last_3d
    model = DCDMNet(config.model_config()).to(device).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "loss": [], "epoch_loss": [],
                             "validation": [], "best": None, "wall_time": 0.0,
                             "epoch_seconds": []}
    found = checkpoint.load_checkpoint(out, model, opt, gen, config) if resume else None
    if found is not None:
        ckpt, state = found
        log.info("resuming %s at epoch %d, step %d", ckpt, state["epoch"], state["step"])
        for name in ("best", "final"):  # before the temporaries go: one may complete a pair
            if weights.finish_interrupted_write(out / name):
                log.info("completed %s.json, whose rename a kill had interrupted", name)
    else:
        ckpt = None
        if resume:
            log.warning("resume=True but %s holds no checkpoint: starting afresh", out)
        for stale in ("best", "final"):  # a fresh run must not pick up an older run's files
            for suffix in (".safetensors", ".json"):
                (out / f"{stale}{suffix}").unlink(missing_ok=True)
    checkpoint.remove_checkpoints(out, keep=ckpt)  # an older run's, and stale temporaries
    metric = "iterations" if solver_available() and split.validation else "loss"
    if metric == "loss":
        log.warning("dcdm.solvers.dcdm is not available (or no validation scenes): the best "
                    "checkpoint is picked by the validation loss, not by solver iterations")
    wall0 = state["wall_time"] - (time.perf_counter() - start)
    n = len(data)
    for epoch in range(state["epoch"], config.epochs):
        for group in opt.param_groups:
            group["lr"] = _lr(config, epoch)
        model.train()
        t_epoch = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        losses = []
        starts = range(0, n, config.batch_size)
        bar = None if tqdm is None else tqdm.tqdm(
            starts, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
        for i in starts if bar is None else bar:
            idx = perm[i:i + config.batch_size]
            b, scene, e = _batch(data, idx, device, fmt)
            loss = _loss(model, b, scene, op, config, e)
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                raise _diverged(config, epoch, state["step"] + 1, f"the loss is {losses[-1]}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state["step"] += 1
            if not torch.stack([p.isfinite().all() for p in model.parameters()]).all():
                raise _diverged(config, epoch, state["step"], "non-finite weights after the step")
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
        state["loss"] += losses
        state["epoch_loss"].append(float(np.mean(losses)))
        state["epoch_seconds"].append(time.perf_counter() - t_epoch)  # training steps only
        state["epoch"] = epoch + 1
        last = epoch + 1 == config.epochs
        if (epoch + 1) % config.validate_every == 0 or last:
            _validate_epoch(model, config, split, val_data, val_op, device, state, out, metric)
        state["wall_time"] = wall0 + time.perf_counter() - start
        ckpt = checkpoint.save_checkpoint(out, model, opt, gen, state, config)
        log.info("epoch %d/%d: loss %.4g (lr %.2e, %.1f s)%s", epoch + 1, config.epochs,
                 state["epoch_loss"][-1], _lr(config, epoch), state["epoch_seconds"][-1],
                 f", validation {state['validation'][-1]}" if state["validation"] else "")
    final = weights.save_weights(out / "final", model, training_grid=config.shape,
                                 loss=_loss_name(config), training=config.to_dict(),
                                 extra={"epoch": state["epoch"]})
    best = out / "best.safetensors"
    if not best.exists():  # no validation scenes: the final weights are the best we have
        best = weights.save_weights(out / "best", model, training_grid=config.shape,
                                    loss=_loss_name(config), training=config.to_dict())
    plot = _plot(out / "loss.png", state, metric)
    best_epoch = state["best"]["epoch"] if state["best"] else state["epoch"]
    return TrainResult(best, final, ckpt, plot, tuple(state["loss"]), tuple(state["epoch_loss"]),
                       tuple(state["validation"]), metric, best_epoch,
                       wall0 + time.perf_counter() - start)


def _diverged(config: TrainConfig, epoch: int, step: int, what: str) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged at epoch {epoch + 1}, step {step}: {what}; nothing of this epoch "
        f"was written (the checkpoint and weights in {config.out} are the last good epoch's, if "
        f"any); start afresh with a lower --lr (was {config.lr:g})"
    )


def _loss_name(config: TrainConfig) -> str:
    if config.loss == "energy":
        name = "energy: 1 - (f.b)|f.b| / ((f.Af)(e.b)), e = A^-1 b"
    else:
        name = "paper: ||b - alpha A f(b)||^2, alpha = f.b / f.Af"
    if config.loss == "abs":
        name += " (|alpha|)"
    if config.cos_weight:
        name += f" + {config.cos_weight} relu(-cos(f, b))"
    if config.scale_weight:
        name += f" + {config.scale_weight} log(|alpha|)^2"
    return name


def _validate_epoch(model, config, split, val_data, val_op, device, state, out, metric) -> None:
    if not split.validation:
        return
    model.eval()
    record: dict[str, Any] = {"epoch": state["epoch"],
                              "loss": _eval_loss(model, val_data, val_op, config, device)}
    if metric == "iterations":
        from .inference import Network

        t = time.perf_counter()
        runs = validation_runs(Network(model, device="cpu"), split.validation,
                               rhs_per_scene=config.validation_rhs,
                               rtol=config.validation_rtol, maxiter=config.validation_maxiter,
                               variant=config.validation_variant, seed=config.seed,
                               **({} if config.validation_second is None
                                  else {"second": config.validation_second}))
        record["iterations"] = float(np.mean([r["effective"] for r in runs]))
        record["converged"] = float(np.mean([r["converged"] for r in runs]))
        record["solver_seconds"] = time.perf_counter() - t
    state["validation"].append(record)
    best = state["best"]
    if best is None or record[metric] < best[metric] or not math.isfinite(best[metric]):
        state["best"] = record
        weights.save_weights(out / "best", model, training_grid=config.shape,
                             loss=_loss_name(config), training=config.to_dict(),
                             extra={"epoch": state["epoch"], "validation": record})
