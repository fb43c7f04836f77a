"""``bench/`` is not installed: put the repository root on ``sys.path`` so that
``import bench.report`` works, and hand the tests the committed JSON fixture."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIXTURE = Path(__file__).with_name("fixture.json")


@pytest.fixture(scope="session")
def fixture_json() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def _record(suite: str, kind: str, key: str, median: float, rounds: int = 1, **info) -> dict:
    """One pytest-benchmark record as the suites write it (``extra_info`` per conftest.record)."""
    return {"name": key, "fullname": f"bench/{suite}::{key}",
            "stats": {"median": median, "min": median, "max": median, "mean": median,
                      "stddev": 0.0, "rounds": rounds},
            "extra_info": {"key": key, "kind": kind, "device": "cpu", **info}}


@pytest.fixture
def bench_record():
    """``bench_record(suite, kind, key, median, rounds=1, **extra_info)``: a synthetic record."""
    return _record


@pytest.fixture
def report_of(tmp_path):
    """``report_of(records) -> (REPORT.md text, write_report's info)`` from synthetic records."""
    import json

    from bench import report
    from bench.results import load

    def write(records: list[dict]):
        path = tmp_path / "run.json"
        path.write_text(json.dumps({"machine_info": {}, "datetime": "2026-12-03T00:00:00",
                                    "benchmarks": records}))
        out = tmp_path / "REPORT.md"
        info = report.write_report(load([path]), out)
        return out.read_text(), info

    return write
