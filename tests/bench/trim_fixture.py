"""Trim a pytest-benchmark JSON of the smoke-sized suite into ``fixture.json``.

How ``fixture.json`` was made (from the repository root)::

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    .venv/bin/python -m pytest bench --bench-smoke --bench-sizes "3=16,24,32;2=64,128" \
        --benchmark-enable --benchmark-json=/tmp/raw.json -p no:cacheprovider
    .venv/bin/python tests/bench/trim_fixture.py /tmp/raw.json tests/bench/fixture.json

Kept: six solver columns (every size), two pipeline methods, every kernel and per-iteration
case; dropped: the per-round timings, pytest-benchmark's options and the CPU flag list. The
numbers were measured on one thread of a loaded 2-core machine: they exercise the report,
they are not a benchmark.
"""

from __future__ import annotations

import json
import sys

KEEP_SOLVERS = {"cg+mg", "cg+mic0", "cg", "fcg+mg", "scipy-cg", "pyamg-sa"}
KEEP_PIPELINE = {"cg+mg", "cg+mic0"}
STATS = ("min", "max", "mean", "stddev", "rounds", "median", "iqr")


def keep(bench: dict) -> bool:
    info = bench.get("extra_info", {})
    if info.get("kind") == "pipeline":
        return info.get("label") in KEEP_PIPELINE
    if info.get("kind") == "solver" and info.get("case") == "to-tolerance":
        return info.get("label") in KEEP_SOLVERS
    return True


def main(src: str, dst: str) -> None:
    with open(src) as fh:
        data = json.load(fh)
    data["machine_info"].get("cpu", {}).pop("flags", None)
    benches = []
    for bench in filter(keep, data["benchmarks"]):
        bench["stats"] = {k: bench["stats"][k] for k in STATS if k in bench["stats"]}
        bench.pop("options", None)
        benches.append(bench)
    data["benchmarks"] = benches
    with open(dst, "w") as fh:
        # one benchmark per line: small, and diffs stay readable
        head = {k: v for k, v in data.items() if k != "benchmarks"}
        fh.write(json.dumps(head)[:-1] + ', "benchmarks": [\n')
        fh.write(",\n".join(json.dumps(b) for b in benches))
        fh.write("\n]}\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
