"""What `lcnn calibrate` and `lcnn fuse` never do: leave a JSON behind for a checkpoint they refused, rewrite the
checkpoint of a run that is training, or write over one of their own inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_calibrate_fuse import _data

from lcnn.cli import main


def test_calibrate_writes_nothing_for_a_refused_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    key, (dev, _), _ = _data(tmp_path, "dev", 0)
    out = tmp_path / "calib.json"
    assert main(["calibrate", str(dev), "--protocol", str(key), "--out", str(out), "--checkpoint",
                 str(tmp_path / "nonexistent.ckpt")]) == 2  # fmt: skip
    assert "no such checkpoint" in capsys.readouterr().err and not out.exists()
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"in training")
    (run / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": "now",
                                           "command": "lcnn train"}))  # fmt: skip
    assert main(["calibrate", str(dev), "--protocol", str(key), "--out", str(out), "--checkpoint", str(run)]) == 2
    assert f"is in use by pid {os.getpid()}" in capsys.readouterr().err and not out.exists()
    assert (run / "checkpoints" / "best.ckpt").read_bytes() == b"in training"


def test_fuse_never_writes_over_an_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    key, dev, _ = _data(tmp_path, "dev", 0)
    before = dev[0].read_bytes()
    for out in (dev[0], key):
        assert main(["fuse", *map(str, dev), "--protocol", str(key), "--out", str(out)]) == 2
        assert "would write over its own input" in capsys.readouterr().err
    assert main(["fuse", *map(str, dev), "--protocol", str(key), "--out", str(tmp_path / "f.txt"),
                 "--weights", str(dev[1])]) == 2  # fmt: skip
    assert dev[0].read_bytes() == before
