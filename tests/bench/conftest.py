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
