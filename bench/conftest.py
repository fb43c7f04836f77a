"""Shared fixtures of the benchmark suites and the ratio summary printed at the end.

Benchmarks record their median in ``MEDIANS`` under a key; ``RATIOS`` names the
pairs whose ratio the summary prints (both measured in the same run).
"""

from __future__ import annotations

import platform

import numpy as np
import pytest

MEDIANS: dict[str, float] = {}
# label -> (numerator key, denominator key, factor, what the ratio means);
# the summary prints factor * median[numerator] / median[denominator]
RATIOS: dict[str, tuple[str, str, float, str]] = {}


def record(benchmark, key: str, **extra) -> None:
    """Store the median of a finished benchmark and tag it with extra_info."""
    benchmark.extra_info.update(extra)
    benchmark.extra_info["numpy"] = np.__version__
    benchmark.extra_info["machine"] = platform.processor() or platform.machine()
    stats = benchmark.stats
    if stats is not None:
        MEDIANS[key] = stats.stats.median
        if "bytes" in extra:
            benchmark.extra_info["GB/s"] = extra["bytes"] / stats.stats.median / 1e9


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_terminal_summary(terminalreporter):
    lines = []
    for label, (num, den, factor, meaning) in RATIOS.items():
        if num in MEDIANS and den in MEDIANS:
            lines.append(f"{label}: {factor * MEDIANS[num] / MEDIANS[den]:.3f}  ({meaning})")
    if lines:
        terminalreporter.section("dcdm ratios (medians, same run)")
        for line in lines:
            terminalreporter.write_line(line)
