"""Timings injected into the precision probe, shared by ``test_probe.py`` and ``test_precision.py`` (real ones
on a shared machine are noise); ``conftest.py`` offers the fixtures."""

import json

import pytest
import torch

import lcnn.probe as probe_module

#: A table as the EPYC of issue 17 measured it (2 threads, batch 256): bf16 trains 1.9x faster, int8 infers 2.5x.
EPYC = {"train": {"32-true": 1638.0, "bf16-mixed": 3068.0}, "infer": {"fp32": 5991.0, "bf16": 10611.0, "int8": 15005.0}}
#: A table like the Xeon of benchmarks/ (AVX512_BF16, no AMX): bf16 no faster, int8 under the margin.
XEON = {"train": {"32-true": 2050.0, "bf16-mixed": 1900.0}, "infer": {"fp32": 7664.0, "bf16": 7000.0, "int8": 8000.0}}


@pytest.fixture
def unpinned(monkeypatch, tmp_path):
    """No ``$LCNN_PRECISION`` (conftest pins it for the other tests), a cache of this test's own, no GPU."""
    monkeypatch.delenv("LCNN_PRECISION", raising=False)
    monkeypatch.setenv("LCNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(probe_module, "_MEASURED", {})


@pytest.fixture
def timings(monkeypatch):
    """``measure`` replaced by ``timings.fake``, returning ``timings.table`` (EPYC's unless changed);
    ``timings.calls`` counts the measurements."""

    class Timings:
        table = EPYC
        calls = 0

    def fake(name, shape, batch, budget_s=0.3, clock=None):
        Timings.calls += 1
        table = json.loads(json.dumps(Timings.table))
        return table, {}, {candidate: 1.1 for part in table.values() for candidate in part}

    Timings.fake = staticmethod(fake)
    monkeypatch.setattr(probe_module, "measure", fake)
    return Timings


def no_measuring(*args, **kwargs):
    raise AssertionError("measured, but nothing needed measuring")
