"""Run folders are never lost or mixed: the lock, --resume / --overwrite, moved folders, and the exact resume
after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lcnn.cli import main
from lcnn.errors import UserError
from lcnn.runs import RunFolder

DIGITS = ["train", "--epochs", "3", "--batch-size", "64", "--val-fraction", "0.25"]

# Runs the command line with a callback that sends the process a signal (SIGKILL: no clean-up of any kind; SIGTERM:
# what a scheduler sends) when training reaches a given batch of a given epoch.
KILLER = """
import os, signal, sys
from lightning.pytorch.callbacks import Callback
import lcnn.train as train

EPOCH, BATCH, SIGNAL = int(sys.argv[1]), int(sys.argv[2]), getattr(signal, sys.argv[3])

class Kill(Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.current_epoch == EPOCH and batch_idx == BATCH:
            os.kill(os.getpid(), SIGNAL)

build = train.build_trainer
def with_kill(*args, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.callbacks.append(Kill())
    return trainer
train.build_trainer = with_kill
from lcnn.cli import main
sys.exit(main(sys.argv[4:]))
"""


def _lcnn(*argv: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "lcnn", *argv], capture_output=True, text=True, check=check,
                          timeout=600, env=env)  # fmt: skip


def _error(capsys, argv: list[str]) -> str:
    """The one line a refused command prints (exit code 2, no traceback)."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcnn: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def _metrics(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("fit_seconds")
    return metrics


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    _lcnn(*DIGITS, "--out", str(out))
    return out


@pytest.mark.parametrize("epoch, batch", [(1, 0), (2, 7)], ids=["after-epoch-1", "mid-epoch-2"])
def test_kill_9_then_resume_gives_the_uninterrupted_run(uninterrupted: Path, tmp_path: Path, capsys, epoch: int,
                                                        batch: int) -> None:  # fmt: skip
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLER, str(epoch), str(batch), "SIGKILL", *DIGITS, "--out",
                             str(out)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "metrics.json").exists() and (out / ".lock").exists()
    assert "a stale lock of pid" in _error(capsys, [*DIGITS, "--out", str(out), "--resume"])
    _lcnn(*DIGITS, "--out", str(out), "--resume", "--force")
    assert _metrics(out) == _metrics(uninterrupted)
    torch.testing.assert_close(_weights(out / "checkpoints" / "best.ckpt"),
                               _weights(uninterrupted / "checkpoints" / "best.ckpt"), rtol=0, atol=0)  # fmt: skip
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows == (uninterrupted / "metrics.csv").read_text().splitlines()  # the epochs before the kill kept
    assert json.loads((out / "metrics.json").read_text())["fit_seconds"] > 0
    assert not (out / ".lock").exists()


def test_sigterm_stops_training_cleanly_and_resume_gives_the_uninterrupted_run(uninterrupted: Path,
                                                                              tmp_path: Path) -> None:
    """SIGTERM mid-epoch (Lightning's own SIGTERM handling is installed then): one line, exit 143, the lock
    released (no --force needed), and --resume gives the uninterrupted run."""
    out = tmp_path / "run"
    stopped = subprocess.run([sys.executable, "-c", KILLER, "1", "3", "SIGTERM", *DIGITS, "--out", str(out)],
                             capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("lcnn: stopped by SIGTERM") and "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
    assert not (out / "metrics.json").exists() and not (out / ".lock").exists()
    _lcnn(*DIGITS, "--out", str(out), "--resume")
    assert _metrics(out) == _metrics(uninterrupted)
    assert (out / "metrics.csv").read_text().splitlines() == (uninterrupted / "metrics.csv").read_text().splitlines()


def test_a_finished_run_is_never_replaced_silently(uninterrupted: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    err = _error(capsys, ["train", "--epochs", "1", "--out", str(run)])
    assert "holds a run (config.json, checkpoints, metrics.json): --resume continues it, --overwrite replaces it" in err
    assert "no such data folder" in _error(capsys, ["train", "--data", "folder:/no/such", "--out", str(run),
                                                    "--overwrite"])  # fmt: skip
    assert "--epochs: must be at least 1" in _error(capsys, ["train", "--epochs", "0", "--out", str(run), "--resume"])
    assert "give one of them" in _error(capsys, ["train", "--out", str(run), "--resume", "--overwrite"])
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing touched
    _lcnn("train", "--epochs", "1", "--out", str(run), "--overwrite")
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 1


def test_a_moved_run_resumes_and_evaluates_itself(uninterrupted: Path, tmp_path: Path) -> None:
    """A copied run folder tests its own best checkpoint, not the one at the old place (changed here)."""
    moved = tmp_path / "moved"
    shutil.copytree(uninterrupted, moved)
    for name in ("best.ckpt", "last.ckpt"):  # the old folder's checkpoints change after the copy
        ckpt = torch.load(uninterrupted / "checkpoints" / name, weights_only=True)
        ckpt["state_dict"] = {k: torch.zeros_like(v) for k, v in ckpt["state_dict"].items()}
        torch.save(ckpt, tmp_path / name)
    original = {name: (uninterrupted / "checkpoints" / name).read_bytes() for name in ("best.ckpt", "last.ckpt")}
    try:
        for name in original:
            shutil.copy(tmp_path / name, uninterrupted / "checkpoints" / name)
        _lcnn(*DIGITS[:1], "--epochs", "4", "--out", str(moved), "--resume")
        metrics = json.loads((moved / "metrics.json").read_text())
        assert metrics["epochs_trained"] == 4 and metrics["test_acc"] > 0.5 and metrics["best_checkpoint"] == \
            "checkpoints/best.ckpt"  # fmt: skip
        assert main(["evaluate", str(moved), "--out", str(tmp_path / "eval")]) == 0
        assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test_acc"] == pytest.approx(
            metrics["test_acc"], abs=1e-6)
    finally:
        for name, data in original.items():
            (uninterrupted / "checkpoints" / name).write_bytes(data)


def test_two_runs_on_one_folder(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "lcnn", *DIGITS, "--epochs", "30", "--out", str(run)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (run / ".lock").exists() and time.time() < deadline:
            time.sleep(0.2)
        for flags in ([], ["--resume"], ["--overwrite"]):  # whatever is asked: the folder is in use
            assert f"{run} is in use by pid {first.pid} on" in _error(capsys, [*DIGITS, "--out", str(run), *flags])
    finally:
        first.kill()
        first.wait()


def test_lock_is_refused_taken_over_and_released(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    with folder.lock():
        with pytest.raises(UserError, match=f"is in use by pid {os.getpid()}"):
            with RunFolder(tmp_path / "run").lock():
                pass
    assert not (tmp_path / "run" / ".lock").exists()
    (tmp_path / "run" / ".lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename,
                                                        "started": "then", "command": "lcnn train"}))  # fmt: skip
    with pytest.raises(UserError, match="a stale lock of pid 4206649 .* no longer runs; --force takes .*over"):
        with folder.lock():
            pass
    with folder.lock(force=True):
        assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == os.getpid()
    (tmp_path / "run" / ".lock").write_text("{not json")
    with pytest.raises(UserError, match="an unreadable lock"):
        with folder.lock():
            pass


def test_force_never_takes_a_live_local_lock_and_overwrite_never_empties_a_foreign_folder(tmp_path: Path,
                                                                                           capsys) -> None:
    """``--force`` is for a lock left behind (or held on another host); ``--overwrite`` replaces a run, and a
    folder holding other files but no run is not one."""
    run = tmp_path / "run"
    run.mkdir()
    live = {"pid": os.getpid(), "host": os.uname().nodename, "started": "now", "command": "lcnn train"}
    (run / ".lock").write_text(json.dumps(live))
    with pytest.raises(UserError, match=f"is in use by pid {os.getpid()}"):
        with RunFolder(run).lock(force=True):
            pass
    assert "is in use by" in _error(capsys, [*DIGITS, "--out", str(run), "--force"])
    assert json.loads((run / ".lock").read_text()) == live  # still the live holder's
    elsewhere = {**live, "host": "another-host"}
    (run / ".lock").write_text(json.dumps(elsewhere))
    with RunFolder(run).lock(force=True):
        (run / ".lock").write_text(json.dumps(elsewhere))  # taken back meanwhile: not ours to remove
    assert (run / ".lock").exists()
    (run / ".lock").unlink()

    data = tmp_path / "my-data"
    (data / "photos").mkdir(parents=True)
    (data / "notes.txt").write_text("keep me")
    err = _error(capsys, [*DIGITS, "--out", str(data), "--overwrite"])
    assert "holds files but no lcnn run (e.g. notes.txt, photos)" in err
    assert (data / "notes.txt").read_text() == "keep me" and (data / "photos").is_dir()
    (tmp_path / "a-file").write_text("x")
    assert "exists and is not a folder" in _error(capsys, [*DIGITS, "--out", str(tmp_path / "a-file" / "run")])


def test_resume_changes_only_how_long_and_where(uninterrupted: Path, tmp_path: Path, capsys) -> None:
    """A resumed run is the same run: its seed, learning rate, model or recipe cannot change; --epochs can."""
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for flags, says in ((["--seed", "5"], "--seeds [5] is not the run's ([0])"),
                        (["--lr", "0.5"], "--lr 0.5 is not the run's (0.001)"),
                        (["--model", "lightcnn9"], "--model 'lightcnn9' is not the run's ('lcnn')"),
                        (["--recipe", "strong"], "--recipe 'strong' is not the run's ('article')"),
                        (["--data", "mnist"], "--data 'mnist' is not the run's ('digits')")):  # fmt: skip
        err = _error(capsys, ["train", "--out", str(run), "--resume", *flags])
        assert says in err and "only --epochs, --patience, --num-workers" in err, err
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # config.json too
    from lcnn.train import resume_config

    assert resume_config(run, epochs=5, num_workers=1)["epochs"] == 5
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "schedule": "onecycle"}))
    assert "onecycle schedule is laid out over its 3 epochs" in _error(capsys, ["train", "--out", str(run),
                                                                             "--resume", "--epochs", "5"])


@pytest.mark.parametrize("env, zero", [({}, True), ({"RANK": "1"}, False), ({"RANK": "0", "LOCAL_RANK": "1"}, True),
                                       ({"LOCAL_RANK": "1"}, False), ({"NODE_RANK": "1"}, False),
                                       ({"SLURM_PROCID": "2"}, False)])  # fmt: skip
def test_rank_zero_from_what_launchers_set(monkeypatch, env: dict, zero: bool) -> None:
    from lcnn.runs import is_rank_zero

    for name in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_rank_zero() is zero


def test_fit_seconds_count_the_fit_only() -> None:
    """Neither the test after the fit nor its loading of the best checkpoint adds to ``fit_seconds`` (loading
    it added that checkpoint's seconds a second time); a resumed fit starts from its checkpoint's."""
    from types import SimpleNamespace

    from lcnn.callbacks import RunState

    fit, test = (SimpleNamespace(state=SimpleNamespace(fn=fn), datamodule=None) for fn in ("fit", "test"))
    state = RunState()
    state.on_fit_start(fit, None)
    time.sleep(0.05)
    checkpoint: dict = {}
    state.on_save_checkpoint(fit, None, checkpoint)
    state.on_fit_end(fit, None)
    seconds = state.fit_seconds
    time.sleep(0.05)
    state.on_load_checkpoint(test, None, checkpoint)
    assert state.fit_seconds == seconds >= 0.05
    resumed = RunState()
    resumed.on_load_checkpoint(fit, None, checkpoint)
    resumed.on_fit_start(fit, None)
    assert resumed.fit_seconds >= checkpoint["lcnn_fit_seconds"]
