"""Multi-process training through Lightning's DDP (two CPU processes, gloo)."""

import json
import subprocess
import sys

import pytest


def test_ddp_reports_metrics_of_the_whole_test_set(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "lcnn", "train", "--epochs", "1", "--batch-size", "64", "--accelerator", "cpu",
           "--devices", "2", "--strategy", "ddp", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_count"] == 450  # the whole test split: each sample once, none twice

    subprocess.run([sys.executable, "-m", "lcnn", "evaluate", str(out), "--out", str(tmp_path / "single")],
                   check=True, capture_output=True, timeout=600)
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert metrics["test_acc"] == pytest.approx(single["test_acc"], abs=1e-6)
    assert metrics["test_loss"] == pytest.approx(single["test_loss"], abs=1e-4)
