"""The ``dcdm`` command line.

``dcdm solve`` solves a system from a file (``.npz`` or Matrix Market) or a
built-in problem and prints iterations, reason, residual and times; with
``--method all`` it runs every method and preconditioner on the same system
and prints one comparison table.
"""

from __future__ import annotations

import argparse
import importlib
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


def _combinations(method: str, precond: str | None) -> list[tuple[str, str | None, dict]]:
    """``(method, M, options)`` to run: one, or for ``--method all`` every sensible pair:
    CG with each linear SPD preconditioner, FCG with each non-linear one, and DCDM
    (robust and paper variants; DCDM takes no M)."""
    from dcdm.solvers import PRECONDITIONERS

    if method != "all":
        return [(method, None if method == "dcdm" else (precond or "auto"), {})]
    combos: list[tuple[str, str | None, dict]] = []
    for m in ("cg", "fcg"):
        for p in sorted(PRECONDITIONERS, key=lambda k: (k != "none", k)):
            if precond is not None and p != precond:
                continue
            module, cls = PRECONDITIONERS[p].split(":")
            try:
                klass = getattr(importlib.import_module(module), cls)
            except ImportError as exc:  # an optional dependency is missing
                log.warning("skipping M=%r: %s", p, exc)
                continue
            if (m == "cg") != (klass.is_linear and klass.is_spd):
                continue
            combos.append((m, None if p == "none" else p, {}))
    if precond is None:
        combos += [("dcdm", None, {"variant": "robust"}), ("dcdm", None, {"variant": "paper"})]
    return combos


def _table(rows: list[dict]) -> str:
    cols = [("method", "{}"), ("M", "{}"), ("iters", "{}"), ("reason", "{}"),
            ("||b-Ax||/||b||", "{:.2e}"), ("setup s", "{:.4f}"), ("solve s", "{:.4f}"),
            ("total s", "{:.4f}")]
    cells = [[fmt.format(r[name]) for name, fmt in cols] for r in rows]
    widths = [max(len(name), *(len(c[i]) for c in cells)) for i, (name, _) in enumerate(cols)]
    line = "  ".join(name.ljust(w) for (name, _), w in zip(cols, widths, strict=False))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in cells]
    return "\n".join(out)


def cmd_solve(args) -> int:
    import dcdm

    A, b, name = _load_problem(args)
    bnorm = float(np.linalg.norm(b)) or 1.0
    print(f"problem: {name}; n = {A.shape[0]}; rtol = {args.rtol:g}")
    rows = []
    status = 0
    for method, precond, opts in _combinations(args.method, args.precond):
        try:
            # warm-up on a tiny budget so JIT compilation is not billed to the first method
            dcdm.solve(A, b, method=method, M=precond, rtol=args.rtol, maxiter=1, **opts)
        except (ImportError, FileNotFoundError, ValueError) as exc:  # extra or weights missing
            if args.method != "all":
                raise
            print(f"skipping {method} {precond or ''}: {exc}", file=sys.stderr)
            continue
        res = dcdm.solve(A, b, method=method, M=precond, rtol=args.rtol, atol=args.atol,
                         maxiter=args.maxiter, **opts)
        status |= 0 if res.converged else 1
        label = method if method != "dcdm" else f"dcdm-{opts.get('variant', 'robust')}"
        rows.append({"method": label, "M": res.stats["preconditioner"], "iters": res.iterations,
                     "reason": res.reason.name, "||b-Ax||/||b||": res.residual_norm / bnorm,
                     "setup s": res.setup_time, "solve s": res.solve_time,
                     "total s": res.setup_time + res.solve_time})
    print(_table(rows))
    return status


def cmd_demo(args) -> int:
    from dcdm.problems.smoke.demo import run_demo

    out = run_demo(n=args.n, steps=args.steps, ndim=2 if args.two_d else 3, method=args.method,
                   precond=args.precond, out=args.out, seed=args.seed, compare=args.compare,
                   rtol=args.rtol, progress=not args.no_progress, report=print)
    print(f"wrote {len(out.frames)} frames, {out.gif.name}, {out.plot.name}, {out.json.name} "
          f"and {len(out.systems)} systems to {out.folder.resolve()}")
    return 0 if out.summary["all_converged"] else 1


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


def build_parser() -> argparse.ArgumentParser:
    from dcdm.problems.gallery import PROBLEMS
    from dcdm.solvers import METHODS, PRECONDITIONERS

    parser = argparse.ArgumentParser(prog="dcdm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dcdm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="solve a system and report iterations, residual, times")
    s.add_argument("path", nargs="?", help="a .npz or .mtx system (default: --problem)")
    s.add_argument("--problem", default="smoke3d", choices=sorted(PROBLEMS),
                   help="built-in problem when no path is given (default smoke3d)")
    s.add_argument("--n", type=int, default=64, help="cells per axis (default 64)")
    s.add_argument("--seed", type=int, default=0, help="scene and right-hand-side seed")
    s.add_argument("--dtype", default="float64", choices=["float32", "float64"])
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
                       "frames, GIF, solver plot, JSON, a comparison of every method")
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
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        print(f"dcdm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
