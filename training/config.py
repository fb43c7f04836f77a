"""The model and training configurations, and their command-line mapping (no torch here).

:class:`ModelConfig` describes a :class:`~dcdm.training.model.DCDMNet`;
:class:`TrainConfig` is flat (model fields included) so that it maps one to one
onto ``dcdm train`` options and onto the JSON stored with every checkpoint and
set of weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_PARAMS", "MODEL_LIMITS", "RESUME_MAY_CHANGE", "DataMix", "ModelConfig",
           "TrainConfig", "add_arguments", "config_from_args"]


def _check_fields(cls, d: dict[str, Any], list_known: bool = False) -> None:
    """Raise ``ValueError`` naming the keys of ``d`` that are not fields of ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        known = f"; known: {sorted(names)}" if list_known else ""
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}{known}")


def _part(cls, config):
    """The ``cls`` (a dataclass) whose fields are the same-named fields of ``config``."""
    return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


def _check_ints(obj, names, low: int, prefix: str = "") -> None:
    """``ValueError`` naming the first field in ``names`` that is not an int >= ``low``."""
    what = "a positive integer" if low == 1 else f"an integer >= {low}"
    for name in names:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{prefix}{name} must be {what}, got {v!r}")


def _flag(name: str) -> str:
    """A :class:`TrainConfig` field as errors name it: the field and its ``dcdm train`` flag."""
    return f"{name} (--{name.replace('_', '-')})"


def _check_floats(obj, names, low: float, high: float = math.inf, *,
                  open_low: bool = True) -> None:
    """``ValueError`` naming the first field in ``names`` that is not a finite real number
    in ``(low, high)`` (``[low, high)`` with ``open_low=False``)."""
    bounds = (f"in ({low:g}, {high:g})" if high < math.inf
              else f"{'>' if open_low else '>='} {low:g}")
    for name in names:
        v = getattr(obj, name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not (ok and (low < v if open_low else low <= v) and v < high):
            raise ValueError(f"{_flag(name)} must be a finite number {bounds}, got {v!r}")


# The largest network a config (or a weights meta) may describe: generous for this problem
# (the paper's nets have ~0.1 M parameters), small enough to be refused before building.
MODEL_LIMITS = {"channels": 512, "kernel": 11, "convs_before": 64, "convs_coarse": 64,
                "convs_after": 64, "levels": 6}
MAX_PARAMS = 2**25


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a :class:`DCDMNet`.

    Attributes
    ----------
    dim : {2, 3}
        Spatial dimensionality.
    channels : int
        Feature channels of every hidden conv (paper: 16).
    convs_before, convs_coarse, convs_after : int
        ReLU convs at full resolution before the pool, at the coarsest level, and
        at full resolution after the upsample (paper 64^3: 4, 6, 4; 128^3: 6, 10, 6).
    levels : int
        Number of AvgPool(2)/upsample levels (paper: 1).
    kernel : int
        Odd convolution width (paper: 3).

    Each field is bounded by :data:`MODEL_LIMITS` and the parameter count by
    :data:`MAX_PARAMS`, so an absurd config (say, from a hand-edited weights meta) is
    refused before any tensor is allocated.

    Examples
    --------
    >>> ModelConfig(dim=3).levels
    1
    >>> ModelConfig(dim=4)
    Traceback (most recent call last):
    ...
    ValueError: ModelConfig.dim must be 2 or 3, got 4
    """

    dim: int = 2
    channels: int = 16
    convs_before: int = 4
    convs_coarse: int = 6
    convs_after: int = 4
    levels: int = 1
    kernel: int = 3

    def __post_init__(self):
        if self.dim not in (2, 3):
            raise ValueError(f"ModelConfig.dim must be 2 or 3, got {self.dim!r}")
        _check_ints(self, ("channels", "kernel"), 1, "ModelConfig.")
        _check_ints(self, ("convs_before", "convs_coarse", "convs_after", "levels"), 0,
                    "ModelConfig.")
        if self.kernel % 2 == 0:
            raise ValueError(f"ModelConfig.kernel must be odd ('same' padding), got {self.kernel}")
        for name, high in MODEL_LIMITS.items():
            if getattr(self, name) > high:
                raise ValueError(f"ModelConfig.{name} must be at most {high}, got "
                                 f"{getattr(self, name)}")
        if self.param_count > MAX_PARAMS:
            raise ValueError(f"ModelConfig has {self.param_count:,} parameters, more than the "
                             f"{MAX_PARAMS:,} allowed; use fewer channels, convs or a smaller "
                             "kernel")

    @property
    def param_count(self) -> int:
        """Trainable parameters of the :class:`DCDMNet` built from this config."""
        c, kd = self.channels, self.kernel**self.dim
        convs = (max(self.levels, 1) * self.convs_before + self.convs_coarse
                 + self.levels * self.convs_after)
        return (kd + 1) * c + convs * (c * c * kd + c) + c + 1

    def to_dict(self) -> dict[str, int]:
        """The fields as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys (or values that are not integers) raise
        ``ValueError``."""
        _check_fields(cls, d, list_known=True)
        return cls(**d)


@dataclass(frozen=True)
class DataMix:
    """Samples per scene of each source, and the Lanczos settings (see
    :mod:`dcdm.training.data`); :class:`TrainConfig` takes its defaults from here."""

    ritz: int = 48
    random: int = 96
    smooth: int = 32
    residual: int = 96
    lanczos_m: int = 400
    theta: int = 20
    residual_methods: tuple[str, ...] = ("cg", "mg")

    @property
    def per_scene(self) -> int:
        return self.ritz + self.random + self.smooth + self.residual


_MODEL, _MIX = ModelConfig(), DataMix()  # TrainConfig's defaults of their fields
LOSSES = ("energy", "paper", "abs")  # dcdm.training.loss.MODES, without importing torch

# fields that may differ between a run and its resumption (they do not change the results
# of the steps already taken)
RESUME_MAY_CHANGE = frozenset(
    {"epochs", "out", "validate_every", "device", "threads", "max_bytes", "cache_data"}
)

_HELP = {
    "dim": "2 or 3",
    "n": "training grid cells per axis",
    "scenes": "training scenes (smoke tanks with random obstacles)",
    "obstacles": "min and max obstacles per scene",
    "ritz": "Ritz-vector samples per scene (the paper's data)",
    "random": "white-noise samples per scene",
    "smooth": "smooth-field samples per scene",
    "residual": "CG / MG-PCG residual samples per scene",
    "lanczos_m": "Lanczos steps per scene (memory: m * n_fluid * 8 bytes)",
    "theta": "the lowest m/2 + theta Ritz modes get weight 9",
    "residual_methods": "solvers whose residuals are sampled (cg, mg)",
    "channels": "hidden channels", "convs_before": "full-res convs before the pool",
    "convs_coarse": "convs at the coarsest level", "convs_after": "full-res convs after",
    "levels": "pool/upsample levels", "kernel": "conv width",
    "epochs": "total epochs (passes over the training data)",
    "batch_size": "samples per Adam step",
    "lr": "initial learning rate", "lr_final": "final learning rate (geometric decay per epoch)",
    "loss": "energy (A-norm error left by one step; needs A^-1 b per sample), paper "
    "(||b - alpha A f||^2, alpha = f.b/f.Af) or abs (|alpha|: fixes the sign)",
    "cos_weight": "weight of the relu(-cos(f, b)) sign penalty",
    "scale_weight": "weight of the log(|alpha|)^2 scale penalty",
    "seed": "seed of scenes, data, initialisation and shuffling",
    "out": "output folder (checkpoint, best/final weights, loss curve)",
    "validation_scenes": "held-out scenes for checkpoint selection",
    "validation_rhs": "right-hand sides per validation scene (random, smooth, ...)",
    "validate_every": "validate every this many epochs (and after the last)",
    "validation_variant": "DCDM variant run for validation (robust, paper)",
    "validation_second": "second direction of the robust variant for validation (mg, rbgs, "
    "none; default: the solver's); 'none' scores the network alone",
    "validation_rtol": "validation solve tolerance",
    "validation_maxiter": "validation solve iteration cap",
    "device": "auto (CUDA when available), cpu or cuda",
    "threads": "torch.set_num_threads for training (default: torch's choice)",
    "max_bytes": "refuse training data above this many bytes",
    "cache_data": "keep the generated data in OUT/data.safetensors for resume/reruns",
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (see ``dcdm train --help`` for each field).

    Examples
    --------
    >>> c = TrainConfig(n=32, epochs=3)
    >>> c.shape, c.samples_per_scene
    ((32, 32), 272)
    >>> TrainConfig.from_dict(c.to_dict()) == c
    True
    """

    dim: int = 2
    n: int = 64
    scenes: int = 8
    obstacles: tuple[int, int] = (2, 10)
    # data mix (per scene)
    ritz: int = _MIX.ritz
    random: int = _MIX.random
    smooth: int = _MIX.smooth
    residual: int = _MIX.residual
    lanczos_m: int = _MIX.lanczos_m
    theta: int = _MIX.theta
    residual_methods: tuple[str, ...] = _MIX.residual_methods
    # model
    channels: int = _MODEL.channels
    convs_before: int = _MODEL.convs_before
    convs_coarse: int = _MODEL.convs_coarse
    convs_after: int = _MODEL.convs_after
    levels: int = _MODEL.levels
    kernel: int = _MODEL.kernel
    # optimisation
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    lr_final: float = 1e-4
    loss: str = "energy"
    cos_weight: float = 0.0
    scale_weight: float = 0.0
    seed: int = 0
    out: str = "out/train"
    # validation
    validation_scenes: int = 2
    validation_rhs: int = 2
    validate_every: int = 1
    validation_variant: str = "robust"
    validation_second: str | None = None
    validation_rtol: float = 1e-6
    validation_maxiter: int = 200
    # machine
    device: str = "auto"
    threads: int | None = None
    max_bytes: int = 8 * 2**30
    cache_data: bool = True

    def __post_init__(self):
        if self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim!r}")
        _check_ints(self, ("n", "scenes", "epochs", "batch_size", "validate_every",
                           "validation_maxiter", "lanczos_m"), 1)
        if self.n < 4:
            raise ValueError(f"n must be >= 4, got {self.n}")
        _check_ints(self, ("ritz", "random", "smooth", "residual", "theta",
                           "validation_scenes", "validation_rhs"), 0)
        if self.samples_per_scene < 1:
            raise ValueError("the data mix is empty: set ritz, random, smooth or residual > 0")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        _check_floats(self, ("lr", "lr_final"), 0.0)
        _check_floats(self, ("cos_weight", "scale_weight"), 0.0, open_low=False)
        _check_floats(self, ("validation_rtol",), 0.0, 1.0)
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"{_flag('threads')} must be a positive integer or None, got "
                             f"{self.threads!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        object.__setattr__(self, "obstacles", tuple(int(v) for v in self.obstacles))
        object.__setattr__(self, "residual_methods", tuple(self.residual_methods))
        self.model_config()  # validates the model fields

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,) * self.dim

    @property
    def samples_per_scene(self) -> int:
        return self.data_mix().per_scene

    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` of the network."""
        return _part(ModelConfig, self)

    def data_mix(self) -> DataMix:
        """The :class:`DataMix` of this run."""
        return _part(DataMix, self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        _check_fields(cls, d)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per :class:`TrainConfig` field (defaults from the dataclass)."""
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_ = f"{_HELP.get(f.name, f.name)} (default {default})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=help_)
        elif f.name == "obstacles":
            parser.add_argument(flag, type=int, nargs=2, metavar=("MIN", "MAX"),
                                default=list(default), help=help_)
        elif f.name == "residual_methods":
            parser.add_argument(flag, nargs="+", choices=["cg", "mg"], default=list(default),
                                help=help_)
        elif f.name == "threads":
            parser.add_argument(flag, type=int, default=None, help=help_)
        elif f.name == "validation_second":
            parser.add_argument(flag, choices=["mg", "rbgs", "none"], default=None, help=help_)
        elif f.name in ("loss", "device", "validation_variant"):
            choices = {"loss": list(LOSSES), "device": ["auto", "cpu", "cuda"],
                       "validation_variant": ["robust", "paper"]}[f.name]
            parser.add_argument(flag, choices=choices, default=default, help=help_)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=help_)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``dcdm train`` arguments."""
    return TrainConfig(**{f.name: (tuple(v) if isinstance(v := getattr(args, f.name), list)
                                   else v)
                          for f in dataclasses.fields(TrainConfig)})
