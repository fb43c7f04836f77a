"""The DCDM network and its training pipeline (needs the ``train`` extra: torch, safetensors).

Modules
-------
model
    :class:`DCDMNet` and :class:`ModelConfig`: the paper's CNN, 2-D and 3-D.
torch_ops
    The masked grid Laplacian in torch (batched), used by the loss.
loss
    The paper's loss ``||b - alpha A f(b)||^2`` and its sign/scale fixes.
data
    Training right-hand sides (Ritz vectors of :mod:`dcdm.solvers.spectrum.lanczos`, random,
    smooth, solver residuals), scenes.
train, config, validate
    :func:`train` / :class:`TrainConfig` / :func:`validate` (``dcdm train`` on the CLI).
weights, inference
    safetensors + JSON weights and training checkpoints, :func:`load_network`, and the fast CPU
    :class:`Network` wrapper the solvers call.
differentiable
    :func:`sparse_solve`: ``x = A^{-1} b`` for a torch sparse SPD ``A`` under autograd
    (gradients for ``b`` and ``A``'s values by one adjoint CG solve).
constraints
    Hard-constraint layers (Levenberg-Marquardt with an implicit-function backward, PI-HC and
    its mixture of experts, the pressure projection as a layer).
atomic
    Crash-safe writes of weights, metas and cached data sets.

Importing this package does not import torch; the names below load their
module (and torch) on first use. The functions ``train`` and ``validate`` share
their modules' names, so they are not re-exported here: use
``dcdm.training.train.train`` and ``dcdm.training.validate.validate``.
"""

from __future__ import annotations

from typing import Any

from dcdm.kernels.optional import require

__all__ = [
    "DCDMNet",
    "ModelConfig",
    "Network",
    "TrainConfig",
    "TrainResult",
    "load_model",
    "load_network",
    "save_weights",
    "sparse_solve",
]

_LAZY = {
    "DCDMNet": "model",
    "ModelConfig": "config",
    "Network": "inference",
    "TrainConfig": "config",
    "TrainResult": "train",
    "load_model": "weights",
    "load_network": "weights",
    "save_weights": "weights",
    "sparse_solve": "differentiable",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        # these modules load torch: if it is missing, say what needs it and which extra installs it
        module = require(f"{__name__}.{_LAZY[name]}", f"dcdm.training.{name}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
