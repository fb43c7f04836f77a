"""Weights and checkpoints on disk: safetensors + a JSON meta, written atomically, read
defensively.

A weights file ``NAME`` is two files, ``NAME.safetensors`` (the tensors) and
``NAME.json`` (the meta). Nothing is ever unpickled (no ``torch.load``). The
meta (``schema_version`` 1) holds::

    schema_version, kind ("weights" or "checkpoint"), name, dim, model (ModelConfig
    fields), param_count, training_grid, loss, package_version, created (UTC ISO
    date), training (the TrainConfig as a dict, or null), sha256 (of the
    .safetensors bytes), plus anything the writer adds

Both files are written to a temporary file in the target folder, fsync'ed and moved
into place with ``os.replace`` (the folder fsync'ed), tensors first, meta last: a
reader never sees a partial file, and the checksum in the meta catches the torn pair
a kill between the two renames leaves (training checkpoints, which must survive any
kill, never rewrite a pair: see :mod:`dcdm.training.checkpoint`).

Shipped weights live in ``dcdm/training/weights/``: ``dcdm-2d`` and ``dcdm-3d``.

A training run's checkpoints (:mod:`dcdm.training.checkpoint`) and its cached training
data (:func:`save_dataset` / :func:`load_dataset`) use the same format.

Examples
--------
>>> import tempfile, pathlib
>>> from dcdm.training.model import DCDMNet
>>> with tempfile.TemporaryDirectory() as d:
...     path = save_weights(pathlib.Path(d) / "net", DCDMNet(dim=2), training_grid=(16, 16))
...     net = load_network(path, dim=2)
...     print(path.name, net.dim, read_meta(path)["param_count"])
net.safetensors 2 32657
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dcdm._version import __version__
from dcdm.kernels.optional import require

from .atomic import fsync_dir, write_atomically
from .model import DCDMNet, ModelConfig

if TYPE_CHECKING:
    from .data import Dataset

__all__ = [
    "SCHEMA_VERSION",
    "SHIPPED",
    "WEIGHTS_DIR",
    "WeightsNotFoundError",
    "load_dataset",
    "load_model",
    "load_network",
    "read_meta",
    "read_tensors",
    "resolve",
    "save_dataset",
    "save_weights",
    "write_tensors",
]

SCHEMA_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED = {2: "dcdm-2d", 3: "dcdm-3d"}
_REQUIRED = ("dim", "model")


class WeightsNotFoundError(FileNotFoundError, ValueError):
    """A weights file is missing (both a ``FileNotFoundError`` and a ``ValueError``)."""


def resolve(model: str | os.PathLike | None = None, *, dim: int | None = None) -> Path:
    """The ``.safetensors`` path of ``model``: ``None`` (shipped for ``dim``), a shipped
    name, or a path (with or without the ``.safetensors``/``.json`` suffix)."""
    if model is None:
        if dim not in SHIPPED:
            raise ValueError(f"give dim=2 or dim=3 to pick the shipped weights, got dim={dim!r}")
        model = SHIPPED[dim]
    name = str(model)
    if name in SHIPPED.values():
        path = WEIGHTS_DIR / f"{name}.safetensors"
        if not path.exists():
            raise WeightsNotFoundError(
                f"the shipped weights {name!r} are not installed (looked for {path}); train "
                f"them with `dcdm train --dim {name[5]}` or pass model=<checkpoint path>"
            )
        return path
    return _tensor_path(model)


def _tensor_path(path) -> Path:
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors")


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def write_tensors(path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write ``tensors`` to ``path`` (.safetensors) and ``meta`` (+ checksum) beside it.

    Returns the ``.safetensors`` path. Tensors are made contiguous CPU copies.
    """
    save = require("safetensors.torch", "writing weights").save

    path = _tensor_path(path)
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = save(flat, metadata={"format": "pt", "dcdm_schema": str(SCHEMA_VERSION)})
    full = {"schema_version": SCHEMA_VERSION, **meta, "sha256": hashlib.sha256(data).hexdigest()}
    write_atomically(path, data)
    write_atomically(_meta_path(path), (json.dumps(full, indent=2, sort_keys=True) + "\n").encode())
    return path


def finish_interrupted_write(path) -> bool:
    """Complete a :func:`write_tensors` killed between its two renames; True if it did.

    Such a kill leaves the new ``.safetensors`` beside the old ``.json`` (their sha256 no
    longer match), while the new meta lies complete and synced in its temporary file. When
    one of those temporaries carries the ``.safetensors``'s checksum, it is renamed into
    place (roll forward); a pair that matches, or that no temporary repairs, is left alone.
    """
    path = _tensor_path(path)
    mpath = _meta_path(path)
    if not path.exists():
        return False
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        if json.loads(mpath.read_text()).get("sha256") == digest:
            return False
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        pass  # a missing or unreadable meta: a temporary may still complete the pair
    for tmp in sorted(path.parent.glob(f".{mpath.name}.*.tmp")):
        try:
            meta = json.loads(tmp.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(meta, dict) and meta.get("sha256") == digest:
            os.replace(tmp, mpath)
            fsync_dir(path.parent)
            return True
    return False


def read_meta(path, required: tuple[str, ...] = _REQUIRED) -> dict[str, Any]:
    """The JSON meta of a weights file, validated (``ValueError`` naming the file if not).

    ``required``: the fields that must be present (default: a model's).
    """
    path = resolve(path)
    mpath = _meta_path(path)
    if not mpath.exists():
        raise WeightsNotFoundError(
            f"{mpath}: the meta file of {path.name} is missing; weights are a .safetensors "
            "+ .json pair written by dcdm.training.weights.save_weights"
        )
    try:
        meta = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{mpath}: not a readable JSON meta ({exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{mpath}: the meta must be a JSON object")
    missing = [k for k in dict.fromkeys(("schema_version", "sha256", *required)) if k not in meta]
    if "schema_version" in missing:
        raise ValueError(f"{mpath}: the meta has no schema_version; not a dcdm weights meta")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise ValueError(
            f"{mpath}: unknown schema_version {meta['schema_version']!r} (this dcdm reads "
            f"schema_version {SCHEMA_VERSION}); re-export the weights with this version"
        )
    if missing:
        raise ValueError(f"{mpath}: the meta lacks required field(s) {missing}")
    return meta


def read_tensors(path, required: tuple[str, ...] = _REQUIRED
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a ``.safetensors`` + meta pair: ``(tensors, meta)``.

    Raises ``ValueError`` naming the file for a missing, truncated or corrupted
    file (safetensors parse errors, or bytes that do not match the meta's sha256).
    """
    SafetensorError = require("safetensors", "reading weights").SafetensorError
    load = require("safetensors.torch", "reading weights").load

    path = resolve(path)
    if not path.exists():
        raise WeightsNotFoundError(f"{path}: no such weights file")
    meta = read_meta(path, required)
    data = path.read_bytes()
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        raise ValueError(
            f"{path}: truncated or corrupted safetensors file ({type(exc).__name__}: {exc})"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise ValueError(
            f"{path}: corrupted weights file: its sha256 {digest[:12]}... does not match the "
            f"meta's {str(meta['sha256'])[:12]}... (a partial copy, or edited bytes)"
        )
    return tensors, meta


def save_weights(
    path,
    model: DCDMNet,
    *,
    name: str | None = None,
    training_grid=None,
    loss: str | None = None,
    training: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save a model's weights and meta (see the module docstring); returns the tensor path."""
    path = _tensor_path(path)
    meta = {
        "kind": "weights",
        "name": name or path.stem,
        "dim": model.config.dim,
        "model": model.config.to_dict(),
        "param_count": model.param_count(),
        "training_grid": None if training_grid is None else [int(n) for n in training_grid],
        "loss": loss,
        "package_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "training": None if training is None else dict(training),
        **dict(extra or {}),
    }
    return write_tensors(path, model.state_dict(), meta)


def model_from(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path,
               prefix: str = "") -> DCDMNet:
    """Build the :class:`DCDMNet` described by ``meta`` and load ``tensors`` (strictly)."""
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: bad model config in the meta: {exc}") from exc
    if config.dim != meta["dim"]:
        raise ValueError(f"{path}: meta dim {meta['dim']} differs from model.dim {config.dim}")
    net = DCDMNet(config)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix)}
    problems = [f"missing {k}" for k in expected if k not in got]
    problems += [f"unexpected {k}" for k in got if k not in expected]
    problems += [f"{k}: shape {tuple(got[k].shape)} vs {expected[k]} in the config"
                 for k in expected if k in got and tuple(got[k].shape) != expected[k]]
    if problems:
        raise ValueError(
            f"{path}: tensors do not match the model config {config}: " + "; ".join(problems[:6])
            + (f"; ... ({len(problems)} problems)" if len(problems) > 6 else "")
        )
    net.load_state_dict({k: got[k].float() for k in expected})
    return net.eval()


def _check_dim(meta: Mapping[str, Any], dim: int | None, path) -> None:
    if dim is not None and meta["dim"] != dim:
        raise ValueError(
            f"{path}: {meta['dim']}-D weights on a {dim}-D grid: the network's dimensionality "
            f"must match the grid's; load the {dim}-D weights (load_network(dim={dim})) or a "
            f"checkpoint trained with dim={dim}"
        )


def load_model(model=None, *, dim: int | None = None) -> tuple[DCDMNet, dict[str, Any]]:
    """Load a :class:`DCDMNet` and its meta; ``model`` as in :func:`load_network`."""
    path = resolve(model, dim=dim)
    tensors, meta = read_tensors(path)
    _check_dim(meta, dim, path)
    prefix = "model." if meta.get("kind") == "checkpoint" else ""
    return model_from(tensors, meta, path, prefix=prefix), meta


def load_network(model=None, *, dim: int | None = None, **options: Any):
    """The :class:`~dcdm.training.inference.Network` for ``model``.

    Parameters
    ----------
    model : None, str, path, DCDMNet or Network
        ``None``: the shipped weights for ``dim`` (``"dcdm-2d"``/``"dcdm-3d"``); a
        shipped name; a weights or training-checkpoint path (``.safetensors``,
        ``.json`` or no suffix); or a model object (wrapped / passed through).
    dim : {2, 3}, optional
        The grid's dimensionality; a mismatch raises ``ValueError`` ("2-D weights
        on a 3-D grid").
    **options
        Passed to :class:`~dcdm.training.inference.Network` (``compile``, ``threads``, ...).

    Networks loaded from files are cached (the last few, keyed by the sha256 of the
    file's bytes and of its ``.json`` meta, ``dim`` and ``options``), so a solver
    called every time step checks and traces the weights once, not per solve
    (hashing a 600 KB file costs about a millisecond). The cached :class:`Network`
    is shared: treat it as read-only.

    Raises
    ------
    ValueError
        Missing, truncated or corrupted files, bad meta, mismatched dims or
        tensor shapes. A missing file raises :class:`WeightsNotFoundError`, which
        is also a ``FileNotFoundError``.
    """
    from .inference import Network

    if isinstance(model, Network):
        _check_dim({"dim": model.dim}, dim, model.name)
        return model
    if isinstance(model, DCDMNet):
        _check_dim({"dim": model.dim}, dim, "model")
        return Network(model, **options)
    path = resolve(model, dim=dim)
    try:
        digest = hashlib.sha256(path.read_bytes())
        digest.update(path.with_suffix(".json").read_bytes())
        key = (digest.hexdigest(), dim, tuple(sorted(options.items())))
        hash(key)
    except (OSError, TypeError):  # missing file (load_model raises) or unhashable options
        key = None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    net, meta = load_model(model, dim=dim)
    meta.setdefault("name", path.stem)
    network = Network(net, meta, **options)
    if key is not None:
        _CACHE[key] = network
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return network


_CACHE: dict[tuple, Any] = {}  # insertion-ordered: the oldest entry is evicted first
_CACHE_SIZE = 4


# -- cached training data -------------------------------------------------------------------
def save_dataset(path, data: Dataset, key: Mapping[str, Any]) -> Path:
    """Cache training data under ``key`` (what generated it); returns the tensor path."""
    tensors = {"b": data.b, "scene": data.scene, "kind": data.kind,
               "flags": torch.from_numpy(data.flags)}
    if data.e is not None:
        tensors["e"] = data.e
    return write_tensors(path, tensors, {"kind": "data", "data_key": dict(key)})


def load_dataset(path, key: Mapping[str, Any]) -> Dataset | None:
    """The data :func:`save_dataset` cached at ``path``, or None if it was generated
    under another ``key``; ``ValueError`` for an unreadable file."""
    from .data import Dataset

    tensors, meta = read_tensors(path, required=("data_key",))
    if meta["data_key"] != key:
        return None
    return Dataset(tensors["b"], tensors["scene"], tensors["kind"], tensors["flags"].numpy(),
                   e=tensors.get("e"))
