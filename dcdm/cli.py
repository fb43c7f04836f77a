"""The ``dcdm`` command line.

``dcdm solve`` solves a system from a file (``.npz`` or Matrix Market) or a
built-in problem and prints iterations, reason, residual and times; with
``--method all`` it runs every method and preconditioner on the same system
and prints one comparison table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import numpy as np

from dcdm import __version__

log = logging.getLogger("dcdm")


def _load_problem(args) -> tuple[object, np.ndarray, str]:
    from dcdm.problems import gallery, io

    if args.path:
        prob = io.load(args.path)
        return prob.A, prob.b, str(args.path)
    A, b = gallery.build(args.problem, args.n, seed=args.seed, dtype=np.dtype(args.dtype))
    return A, b, f"{args.problem} n={args.n} seed={args.seed}"


def _weights_note(A) -> str:
    """``"; face weights in [lo, hi]"`` for a grid operator with face weights, else ``""``."""
    weights = getattr(getattr(A, "grid", None), "face_weights", None)
    if weights is None:
        return ""
    return (f"; face weights in [{min(float(w.min()) for w in weights):.3g}, "
            f"{max(float(w.max()) for w in weights):.3g}]")


def _check_precond(method: str, precond: str | None) -> None:
    """Refuse ``--precond`` with ``--method dcdm`` as :func:`dcdm.solve` refuses ``M``."""
    if method == "dcdm" and precond not in (None, "auto"):
        raise ValueError(
            f"--method dcdm takes no preconditioner --precond (got {precond!r}; its "
            "preconditioner is the network): drop --precond, or use --method fcg --precond neural"
        )


def _combinations(method: str, precond: str | None) -> list[tuple[str, str | None, dict]]:
    """``(method, M, options)`` to run: one, or for ``--method all`` the registries'
    comparison matrix (:func:`dcdm.solvers.compare.comparison_matrix`), restricted to
    ``precond`` when given."""
    from dcdm.solvers.compare import comparison_matrix

    if method != "all":
        return [(method, None if method == "dcdm" else (precond or "auto"), {})]
    return comparison_matrix(precond)


def cmd_solve(args) -> int:
    from dcdm.solvers.compare import compare, format_table

    _check_precond(args.method, args.precond)
    A, b, name = _load_problem(args)
    print(f"problem: {name}; n = {A.shape[0]}{_weights_note(A)}; rtol = {args.rtol:g}")
    rows, skipped = compare(A, b, _combinations(args.method, args.precond), rtol=args.rtol,
                            atol=args.atol, maxiter=args.maxiter,
                            skip_errors=args.method == "all")
    for line in skipped:  # an extra or the weights missing, or a method that does not apply
        print(f"skipping {line}", file=sys.stderr)
    print(format_table(rows))
    return 0 if all(r["converged"] for r in rows) else 1


def cmd_demo(args) -> int:
    from dcdm.problems.smoke.demo import run_demo

    _check_precond(args.method, args.precond)
    out = run_demo(n=args.n, steps=args.steps, ndim=2 if args.two_d else 3, method=args.method,
                   precond=args.precond, out=args.out, seed=args.seed, compare=args.compare,
                   rtol=args.rtol, progress=not args.no_progress, report=print,
                   scene=args.scene)
    print(f"wrote {len(out.frames)} frames, {out.gif.name}, {out.plot.name}, {out.json.name} "
          f"and {len(out.systems)} systems to {out.folder.resolve()}")
    return 0 if out.summary["all_converged"] else 1


def cmd_spectrum(args) -> int:
    from dcdm import spectrum

    A, b, name = _load_problem(args)
    names = args.precond or [m for m in spectrum.LINEAR
                             if m != "mg" or getattr(A, "grid", None) is not None]
    print(f"problem: {name}; n = {A.shape[0]}{_weights_note(A)}; rtol = {args.rtol:g}; "
          f"SLQ {args.steps} steps x {args.probes} probes")
    rows = spectrum.survey(A, b, names, rtol=args.rtol, steps=args.steps, probes=args.probes,
                           predict_steps=args.predict_steps, seed=args.seed,
                           progress=not args.no_progress)
    print(spectrum.format_survey(rows))
    if args.plot:
        fig = spectrum.plot_densities(rows, args.plot, title=name)
        print(f"density plot: {args.plot}")
        del fig
    return 0 if all(r.get("reason", "CONVERGED").startswith("CONVERGED") for r in rows) else 1


def cmd_train(args) -> int:
    from dcdm.training.config import config_from_args
    from dcdm.training.train import train

    config = config_from_args(args)
    res = train(config, resume=args.resume, progress=args.progress)
    print(f"trained {config.dim}-D n={config.n} for {len(res.epoch_loss)} epochs "
          f"in {res.wall_time:.0f} s; final loss {res.epoch_loss[-1]:.4g}")
    print(f"best weights:  {res.best_path} (epoch {res.best_epoch}, chosen by validation "
          f"{res.validation_metric})")
    print(f"final weights: {res.final_path}")
    print(f"checkpoint:    {res.checkpoint_path} (continue with --resume)")
    if res.plot_path is not None:
        print(f"loss curve:    {res.plot_path}")
    return 0


def cmd_info(args) -> int:
    from dcdm import kernels
    from dcdm.solvers import METHODS, PRECONDITIONERS

    print(f"dcdm {__version__}")
    print(f"numpy {np.__version__}")
    print(f"kernel back-ends: {', '.join(kernels.available_backends())}")
    print(f"methods: {', '.join(sorted(METHODS))}")
    print(f"preconditioners: {', '.join(sorted(PRECONDITIONERS))}")
    return 0


def _add_problem_arguments(parser: argparse.ArgumentParser, problem: str) -> None:
    """The system to work on: a file, or a built-in problem (``solve`` and ``spectrum``)."""
    from dcdm.problems.gallery import PROBLEMS

    parser.add_argument("path", nargs="?", help="a .npz or .mtx system (default: --problem)")
    parser.add_argument("--problem", default=problem, choices=sorted(PROBLEMS),
                        help=f"built-in problem when no path is given (default {problem})")
    parser.add_argument("-n", "--n", type=int, default=64, help="cells per axis (default 64)")
    parser.add_argument("--seed", type=int, default=0,
                        help="scene, right-hand-side (and probe) seed")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])


def build_parser() -> argparse.ArgumentParser:
    from dcdm.solvers import METHODS, PRECONDITIONERS

    parser = argparse.ArgumentParser(prog="dcdm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dcdm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="solve a system and report iterations, residual, times")
    _add_problem_arguments(s, "smoke3d")
    s.add_argument("--method", default="cg", choices=[*sorted(METHODS), "all"],
                   help="Krylov method, or 'all' for a comparison table")
    s.add_argument("--precond", "-M", default=None, choices=["auto", *sorted(PRECONDITIONERS)],
                   help="preconditioner (default auto: mg on grids; with --method all: only "
                   "this one)")
    s.add_argument("--rtol", type=float, default=1e-6)
    s.add_argument("--atol", type=float, default=0.0)
    s.add_argument("--maxiter", type=int, default=None)
    s.set_defaults(func=cmd_solve)

    from dcdm.problems.smoke.demo import DEFAULT_STEPS

    d = sub.add_parser("demo", help="smoke rising past a moving obstacle: one solve per step, "
                       "frames, GIF, solver plot, JSON, a comparison of every method (also on "
                       "a 1000:1 two-phase system)")
    d.add_argument("--scene", default="rising_smoke", choices=["rising_smoke", "two_phase_tank"],
                   help="the simulated scene (default rising_smoke; two_phase_tank: a heavy "
                   "pool and drop, density ratio 1000)")
    d.add_argument("--n", type=int, default=64, help="cells per axis (default 64)")
    d.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"time steps (default {DEFAULT_STEPS})")
    d.add_argument("--2d", dest="two_d", action="store_true", help="a 2-D scene instead of 3-D")
    d.add_argument("--method", default="auto", choices=["auto", *sorted(METHODS)],
                   help="pressure solver each step (default auto: cg)")
    d.add_argument("--precond", "-M", default="auto", choices=["auto", *sorted(PRECONDITIONERS)],
                   help="preconditioner for cg/fcg (default auto: mg)")
    d.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    d.add_argument("--seed", type=int, default=0, help="seed of the inflow perturbation")
    d.add_argument("--compare", type=int, default=3,
                   help="steps at which every method solves the same system (default 3)")
    d.add_argument("--rtol", type=float, default=1e-6)
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)

    from dcdm.solvers.spectrum.survey import LINEAR

    sp = sub.add_parser("spectrum", help="extremes, condition numbers, SLQ densities and "
                        "predicted vs actual CG iterations of M^-1 A for linear preconditioners")
    _add_problem_arguments(sp, "smoke2d")
    sp.add_argument("--precond", "-M", action="append", choices=list(LINEAR),
                    help="a linear preconditioner (repeatable; default: all that apply)")
    sp.add_argument("--rtol", type=float, default=1e-6)
    sp.add_argument("--steps", type=int, default=40, help="SLQ Lanczos steps (default 40)")
    sp.add_argument("--probes", type=int, default=8, help="SLQ probes (default 8)")
    sp.add_argument("--predict-steps", type=int, default=200,
                    help="most Lanczos steps of a prediction (default 200)")
    sp.add_argument("--plot", default="spectrum.png",
                    help="density plot PNG (default spectrum.png; '' for none)")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_spectrum)

    from dcdm.training.config import add_arguments  # torch-free

    t = sub.add_parser("train", help="train the DCDM network (needs the train extra: torch)")
    add_arguments(t)
    t.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint (same config; --epochs may grow)")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="tqdm progress bars (default on)")
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("info", help="versions and available back-ends")
    i.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:  # OSError: unreadable, unwritable
        print(f"dcdm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
