"""A training run's state on disk, resumable after a kill at any instant.

:func:`save_checkpoint` writes ``OUT/checkpoint-EEEEE`` (``EEEEE``: the epochs done), a
``.safetensors`` + ``.json`` pair in the format of :mod:`dcdm.training.weights` (``kind``
``"checkpoint"``): the model, the Adam state, the torch RNG states, the counters and
histories, so a resumed run continues bit for bit. :func:`load_checkpoint` restores the
newest complete one.

Why a kill cannot tear it: every checkpoint is written once, under a name of its own. Its
tensors, then its meta, go to temporary files that are fsync'ed and renamed into place (the
folder fsync'ed after each rename). The rename of the meta, a small file that holds the
sha256 of the tensors, is the commit: before it the checkpoint does not exist for
:func:`load_checkpoint`, after it it is complete. Only then are the older checkpoints and
any stale temporaries deleted (metas first), so the previous complete checkpoint stays
until the new one is complete. A killed write leaves at worst an uncommitted newer
checkpoint (tensors without a meta) and a ``.tmp`` file: skipped on resume, deleted by
:func:`remove_checkpoints` at the next start or save.

Examples
--------
>>> import tempfile, pathlib, torch
>>> from dcdm.training.config import TrainConfig
>>> from dcdm.training.model import DCDMNet
>>> config = TrainConfig(channels=2)
>>> net = DCDMNet(config.model_config())
>>> opt, gen = torch.optim.Adam(net.parameters()), torch.Generator()
>>> with tempfile.TemporaryDirectory() as d:
...     path = save_checkpoint(d, net, opt, gen, {"epoch": 3, "step": 30}, config)
...     found, state = load_checkpoint(d, net, opt, gen, config)
...     print(path.name, found == path, state["epoch"])
checkpoint-00003.safetensors True 3
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .config import RESUME_MAY_CHANGE, TrainConfig
from .model import DCDMNet
from .weights import WeightsNotFoundError, model_from, read_tensors, write_tensors

__all__ = ["load_checkpoint", "remove_checkpoints", "save_checkpoint"]

log = logging.getLogger(__name__)

# a checkpoint's files (``checkpoint.*``: the single pair earlier versions wrote), and the
# temporaries of the weights writer (``.NAME.SUFFIX.XXXXXXXX.tmp``) for every file train writes
_FILE = re.compile(r"checkpoint(?:-(\d+))?\.(safetensors|json)")
_TEMPORARY = re.compile(r"\.(checkpoint(-\d+)?|best|final|data)\.(safetensors|json)\.\w+\.tmp")


def save_checkpoint(out, model: DCDMNet, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, state: Mapping[str, Any],
                    config: TrainConfig) -> Path:
    """Write a checkpoint of a training run into the folder ``out`` (see the module
    docstring); returns its ``.safetensors`` path.

    ``state`` holds the ``epoch`` and ``step`` counters and the run's histories (JSON).
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_sd = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt_sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                scalars.setdefault(str(idx), {})[key] = val
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = generator.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    tensors["counters"] = torch.tensor([state["epoch"], state["step"]], dtype=torch.int64)
    meta = {"kind": "checkpoint", "dim": config.dim, "model": config.model_config().to_dict(),
            "param_count": model.param_count(), "training": config.to_dict(),
            "optimizer": {"param_groups": opt_sd["param_groups"], "scalars": scalars},
            "state": dict(state)}
    path = write_tensors(Path(out) / f"checkpoint-{int(state['epoch']):05d}", tensors, meta)
    remove_checkpoints(out, keep=path)  # only now: the new checkpoint is complete
    return path


def load_checkpoint(out, model: DCDMNet, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, config: TrainConfig
                    ) -> tuple[Path, dict[str, Any]] | None:
    """Restore the newest complete checkpoint in the folder ``out`` into ``model``,
    ``optimizer``, ``generator`` and the torch RNGs: ``(path, state)``, or None if
    ``out`` holds none (checkpoints whose write was killed before its commit are skipped).

    Raises ``ValueError`` if ``config`` differs from the checkpoint's in a field outside
    :data:`~dcdm.training.config.RESUME_MAY_CHANGE`, or if every committed checkpoint is
    damaged (bytes that do not match their meta: not something a kill leaves).
    """
    found = _newest_complete(Path(out))
    if found is None:
        return None
    path, tensors, meta = found
    saved = TrainConfig.from_dict(meta["training"]).to_dict()
    ours = config.to_dict()
    diff = sorted(k for k in ours if k not in RESUME_MAY_CHANGE and saved[k] != ours[k])
    if diff:
        raise ValueError(
            f"{path}: cannot resume: the config differs from the checkpoint's in "
            + ", ".join(f"{k} ({saved[k]!r} -> {ours[k]!r})" for k in diff)
            + f"; only {sorted(RESUME_MAY_CHANGE)} may change (or start afresh without resume)"
        )
    net = model_from(tensors, meta, path, prefix="model.")
    model.load_state_dict(net.state_dict())
    opt_state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            opt_state.setdefault(int(idx), {})[key] = val
    for idx, extra in meta["optimizer"]["scalars"].items():
        opt_state.setdefault(int(idx), {}).update(extra)
    optimizer.load_state_dict({"state": opt_state,
                               "param_groups": meta["optimizer"]["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.shuffle"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    state = dict(meta["state"])
    state["epoch"], state["step"] = (int(v) for v in tensors["counters"])
    return path, state


def remove_checkpoints(out, keep: Path | None = None) -> None:
    """Delete the checkpoints in ``out`` but ``keep`` (a ``.safetensors`` path), and the
    temporaries a killed write left; metas go first, so no deleted checkpoint looks complete."""
    out = Path(out)
    if not out.is_dir():
        return
    doomed = [p for p in out.iterdir()
              if (_FILE.fullmatch(p.name) and (keep is None or p.stem != keep.stem))
              or _TEMPORARY.fullmatch(p.name)]
    for p in sorted(doomed, key=lambda p: p.suffix != ".json"):
        p.unlink(missing_ok=True)


def _newest_complete(out: Path) -> tuple[Path, dict, dict] | None:
    """``(path, tensors, meta)`` of the newest committed checkpoint whose bytes match its meta."""
    named = [(int(m[1] or -1), p) for p in out.glob("checkpoint*.safetensors")
             if (m := _FILE.fullmatch(p.name))]
    damaged = []
    for _, path in sorted(named, reverse=True):
        try:
            tensors, meta = read_tensors(path, required=("dim", "model", "training", "state"))
        except WeightsNotFoundError:
            log.info("skipping %s: never committed (its write was interrupted)", path.name)
            continue
        except ValueError as exc:
            log.warning("skipping a damaged checkpoint: %s", exc)
            damaged.append(str(exc))
            continue
        if damaged:
            log.warning("resuming from the older checkpoint %s", path.name)
        return path, tensors, meta
    if damaged:
        raise ValueError(f"{out}: no complete checkpoint to resume from: " + "; ".join(damaged)
                         + "; start afresh without --resume")
    return None
