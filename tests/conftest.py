from pathlib import Path

import pytest
from probe_timings import timings, unpinned  # noqa: F401 - fixtures of test_probe, test_precision
from spoof_fixtures import checkpoint, corpus  # noqa: F401 - fixtures of test_score, test_reliability

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_data() -> Path:
    """The team's real test data (``../shared/data``); tests using it skip where it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(autouse=True, scope="session")
def _fp32_unless_a_test_unpins():
    """Every test runs pinned to fp32 (``$LCNN_PRECISION``): results the same on every machine, and no test
    times precisions or writes the probe's cache in passing. ``unpinned`` (test_probe, test_precision) unpins."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LCNN_PRECISION", "32-true")
        yield
