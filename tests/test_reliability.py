"""Issue 26's library rules: a UTF-8 BOM in any text input, outputs that would replace an input, one writer per
output, calibration and fusion on extreme scores, and the ranges of the augmentation grammar's numbers."""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lcnn.audio.augment import parse_augment
from lcnn.audio.io import AudioError, load_audio
from lcnn.cli import main
from lcnn.data.protocols import read_protocol
from lcnn.errors import UserError
from lcnn.io import BOM, iter_lines, printable, refuse_overwrite
from lcnn.metrics import fit_calibration, fit_fusion
from lcnn.runs import hold, output_lock
from lcnn.serve.decode import decode_audio
from lcnn.serve.errors import ClientError


def test_a_bom_opening_a_text_file_is_dropped(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("LA_0069 LA_E_1 - A07 spoof\nLA_0070 LA_E_2 - - bonafide\n")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(BOM + plain.read_bytes())
    assert [t.utt for t in read_protocol(bom)] == [t.utt for t in read_protocol(plain)] == ["LA_E_1", "LA_E_2"]
    csv = tmp_path / "list.csv"
    csv.write_bytes(BOM + b"a.flac,bonafide\nb.flac,spoof\n")  # a header-less CSV, its first id behind the BOM
    assert [t.utt for t in read_protocol(csv)] == ["a.flac", "b.flac"]
    # Only at the start of the file: elsewhere the character is data, and messages show it.
    later = tmp_path / "later.txt"
    later.write_bytes(b"x\n" + BOM + b"y\n")
    assert [line for _, line in iter_lines(later)] == ["x", "\ufeffy"]
    assert printable("\ufeffy\tz") == "\\ufeffy\\tz"


def _inputs(tmp_path: Path) -> Path:
    src = tmp_path / "scores.txt"
    src.write_text("a 1\n")
    return src


def test_an_output_that_is_an_input_is_refused_by_path_symlink_and_hard_link(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    (tmp_path / "link.txt").symlink_to(src)
    os.link(src, tmp_path / "hard.txt")
    for out in (src, tmp_path / "." / "scores.txt", tmp_path / "link.txt", tmp_path / "hard.txt"):
        with pytest.raises(UserError, match=r"--out .* is the input SCORES .*write over its own input"):
            refuse_overwrite({"--out": out}, {"SCORES": src})
    refuse_overwrite({"--out": tmp_path / "new.txt"}, {"SCORES": src})  # a new file is fine
    assert src.read_text() == "a 1\n"


def test_an_output_folder_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "flac").mkdir(parents=True)
    with pytest.raises(UserError, match="lies inside the input DATA_DIR"):
        refuse_overwrite({"--out": corpus / "copy"}, {}, {"DATA_DIR": corpus})
    with pytest.raises(UserError, match="holds the input"):
        refuse_overwrite({"--out": tmp_path}, {}, {"DATA_DIR": corpus})
    with pytest.raises(UserError, match="holds the input CHECKPOINT"):
        refuse_overwrite({"--out": tmp_path}, {"CHECKPOINT": corpus / "flac"})
    refuse_overwrite({"--out": tmp_path / "copy"}, {}, {"DATA_DIR": corpus})
    refuse_overwrite({"--out": corpus / "evaluation"}, {"RUN": corpus})  # a run folder may hold its evaluations


def test_a_second_writer_of_one_output_stops_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "two.txt"
    lock = output_lock(out)
    assert lock.parent == tmp_path and lock.name == ".two.txt.lock"
    with hold(lock, out):
        with pytest.raises(UserError, match=rf"{out} is in use by pid {os.getpid()}"):
            with hold(lock, out):
                pass
    assert not lock.exists()  # released
    with hold(lock, out):  # and free again
        pass


def test_calibration_and_fusion_refuse_a_score_that_would_flatten_the_map() -> None:
    rng = np.random.default_rng(0)
    bona, spoof = rng.normal(2, 1, 400), rng.normal(-2, 1, 400)
    good = fit_calibration(bona, spoof)
    assert good.a > 1  # well separated scores: a steep map
    # Affine invariance holds up to the largest scores a float holds (no overflow in the standardisation).
    huge = fit_calibration(bona * 1e300, spoof * 1e300)
    assert huge.a * 1e300 == pytest.approx(good.a, rel=1e-6) and huge.b == pytest.approx(good.b, rel=1e-6)
    extreme = bona.copy()
    extreme[7] = 1e308
    with pytest.raises(ValueError, match=r"the score 1e\+308 lies so far from the others .* one value"):
        fit_calibration(extreme, spoof)
    with pytest.raises(ValueError, match=r"system 1: the score 1e\+308"):
        fit_fusion(np.c_[bona, extreme], np.c_[spoof, spoof])
    fused = fit_fusion(np.c_[bona, bona + rng.normal(0, 1, 400)], np.c_[spoof, spoof + rng.normal(0, 1, 400)])
    assert all(np.isfinite(fused.weights)) and fused.weights[0] > 1


@pytest.mark.parametrize("item, message", [
    ("speed:1e9", "factor 1e\\+09 is outside 0.5 to 2"),
    ("speed:0.9,nan", "not a finite number"),
    ("speed:0.1", "factor 0.1 is outside"),
    ("noise:/x@snr=-50,0", "snr -50,0 dB is outside"),
    ("noise:/x@snr=0,inf", "not a finite number"),
    ("rawboost:3@p=1.5", "p"),
])  # fmt: skip
def test_augmentation_numbers_out_of_range_are_one_line_errors(item: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_augment([item])


# ---------------------------------------------------------------------------------------------------------
# The command line: the same rules, as a user meets them


def _user_files(tmp_path: Path) -> dict[str, Path]:
    """Files that exist: the check is made on the parsed command line, before any of them is read."""
    files = {name: tmp_path / name for name in ("model.ckpt", "scores.txt", "key.txt", "list.txt", "a.flac")}
    for path in files.values():
        path.write_bytes(b"x\n")
    (tmp_path / "corpus").mkdir()
    return files


@pytest.mark.parametrize("kind", ["path", "symlink", "hard link"])
def test_no_command_writes_over_its_input(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    f = _user_files(tmp_path)

    def alias(path: Path) -> str:
        if kind == "path":
            return str(path)
        other = tmp_path / f"alias-{path.name}"
        other.unlink(missing_ok=True)
        other.symlink_to(path) if kind == "symlink" else os.link(path, other)
        return str(other)

    commands = [
        ["score", str(f["model.ckpt"]), str(f["list.txt"]), "--out", alias(f["list.txt"])],
        ["score", str(f["model.ckpt"]), str(f["a.flac"]), "--out", alias(f["a.flac"])],
        ["score", str(f["model.ckpt"]), str(f["list.txt"]), "--out", alias(f["model.ckpt"])],
        ["calibrate", str(f["scores.txt"]), "--protocol", str(f["key.txt"]), "--out", alias(f["scores.txt"])],
        ["fuse", str(f["scores.txt"]), "--protocol", str(f["key.txt"]), "--out", alias(f["key.txt"])],
        ["export", str(f["model.ckpt"]), "--format", "onnx", "--out", alias(f["model.ckpt"])],
    ]
    for argv in commands:
        before = {p: p.read_bytes() for p in f.values()}
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "would write over its own input" in err, (argv, err)
        assert {p: p.read_bytes() for p in f.values()} == before  # nothing touched


def test_outputs_inside_an_input_folder_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _user_files(tmp_path)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"x")
    assert main(["degrade", str(tmp_path / "corpus"), "--data", "minispoof", "--split", "eval", "--chain", "mulaw",
                 "--out", str(tmp_path / "corpus" / "copy")]) == 2  # fmt: skip
    assert "lies inside the input DATA_DIR" in capsys.readouterr().err
    assert main(["evaluate", str(run / "checkpoints" / "best.ckpt"), "--out", str(run)]) == 2
    assert "holds the input" in capsys.readouterr().err
    assert not (tmp_path / "corpus" / "copy").exists() and f["scores.txt"].exists()


@pytest.mark.parametrize("argv, message", [
    (["serve", "x.ckpt", "--port", "70000"], "--port: must be a TCP port from 1 to 65535, got 70000"),
    (["serve", "x.ckpt", "--max-batch", "0"], "--max-batch: must be at least 1"),
    (["score", "x.ckpt", "list.txt", "--segment", "nan"], "--segment: must be a finite number above 0, got nan"),
    (["score", "x.ckpt", "list.txt", "--segment", "4", "--hop", "inf"], "--hop: must be a finite number above 0"),
    (["calibrate", "s.txt", "--out", "c.json", "--p-spoof", "1"], "--p-spoof: must be between 0 and 1"),
    (["train", "--task", "spoof", "--augment", "speed:1e9", "--out", "RUN"], "factor 1e\\+09 is outside 0.5 to 2"),
])  # fmt: skip
def test_numbers_out_of_range_are_one_line_errors(argv: list[str], message: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "RUN").exists() and not list(tmp_path.glob("*.partial"))  # nothing made


def test_a_second_scorer_of_one_output_stops_at_once(checkpoint: Path, corpus: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "two.txt"
    argv = ["score", str(checkpoint), str(corpus / "protocol.txt"), "--audio-dir", str(corpus / "flac"), "--out",
            str(out), "--no-cache", "--num-workers", "0"]  # fmt: skip
    with hold(output_lock(out), out):  # the first scorer, still running
        assert main(argv) == 2
        assert f"{out} is in use by pid {os.getpid()}" in capsys.readouterr().err
        assert not out.exists() and not out.with_name("two.txt.partial").exists()
    assert main(argv) == 0 and out.exists()


_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture(scope="module")
def long_run(checkpoint: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], bytes]:
    """A scoring command over 80 trials (links to the corpus's files), in batches of 2, and the bytes of its
    uninterrupted run."""
    root = tmp_path_factory.mktemp("long")
    (root / "flac").mkdir()
    sources = sorted((corpus / "flac").iterdir())
    for i in range(80):
        os.link(sources[i % len(sources)], root / "flac" / f"T{i:04d}.flac")
    (root / "list.txt").write_text("".join(f"flac/T{i:04d}\n" for i in range(80)))
    argv = [sys.executable, "-m", "lcnn", "score", str(checkpoint), str(root / "list.txt"), "--batch-size", "2",
            "--no-cache", "--num-workers", "1"]  # fmt: skip
    subprocess.run([*argv, "--out", str(root / "whole.txt")], env=_ENV, check=True, capture_output=True, timeout=300)
    return argv, (root / "whole.txt").read_bytes()


@pytest.mark.parametrize("target", ["process", "group"])
def test_sigterm_stops_scoring_cleanly_and_the_same_command_resumes_it(long_run, target: str, tmp_path: Path) -> None:
    """SIGTERM to the command, or to its process group as a job scheduler sends it (its DataLoader worker too):
    one line, exit 143, the finished batches kept; the same command then gives the bytes of an uninterrupted run."""
    argv, whole = long_run
    proc = subprocess.Popen([*argv, "--out", str(tmp_path / "stopped.txt")], env=_ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    shard = tmp_path / "stopped.txt.partial" / "scores-rank0.txt"
    deadline = time.monotonic() + 120
    while proc.poll() is None and not (shard.exists() and shard.read_bytes().count(b"\n") >= 20):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be stopped"
    stopped_at = time.monotonic()
    if target == "group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - stopped_at < 10  # within seconds
    assert proc.returncode == 143, err
    # One line of its own (the progress bar shares stderr), no traceback, not Lightning's log of the signal.
    assert err.strip().splitlines()[-1].startswith("lcnn: stopped") and "Traceback" not in err, err
    assert "Received SIGTERM" not in err and err.count("lcnn:") == 1, err
    assert not (tmp_path / "stopped.txt").exists() and shard.read_bytes().count(b"\n") >= 20
    subprocess.run([*argv, "--out", str(tmp_path / "stopped.txt")], env=_ENV, check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    assert (tmp_path / "stopped.txt").read_bytes() == whole


def test_a_wav_declaring_1_hz_is_refused_at_once(tmp_path: Path) -> None:
    """A 244-byte WAV whose header says 1 Hz took seconds of CPU (resampled into minutes of audio) and scored."""
    samples = np.zeros(100, np.int16).tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16)  # PCM, mono, 1 Hz, 2 bytes a second, 16-bit
    size = struct.pack("<I", len(samples))
    data = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " + fmt + b"data" + size
    (tmp_path / "one-hz.wav").write_bytes(data + samples)
    with pytest.raises(AudioError, match=r"one-hz.wav: a sample rate of 1 Hz; expected speech .* 4000 Hz or more"):
        load_audio(tmp_path / "one-hz.wav")
    with pytest.raises(ClientError, match="a sample rate of 1 Hz"):
        decode_audio(data + samples, 16000, 300)


def test_ids_that_differ_by_an_invisible_character_look_different_in_messages(tmp_path: Path) -> None:
    """A zero-width space (a BOM inside a line) kept in an id: the missing and the extra id are told apart."""
    from lcnn.data.protocols import Trial
    from lcnn.score.files import check_scores, read_scores

    (tmp_path / "s.txt").write_text("a 1\nb 2\n\u200bc 3\n")
    check = check_scores(read_scores(tmp_path / "s.txt"), [Trial("a"), Trial("b"), Trial("c")], "key.txt")
    message = " ".join(check.errors)
    assert "e.g. c" in message and "\\u200bc (line 3)" in message, message


def test_a_reader_that_leaves_early_is_no_error(tmp_path: Path) -> None:
    """`lcnn pretrained list | head -1`: the pipe closes under the command; no error line, SIGPIPE's status."""
    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    cmd = subprocess.run([sys.executable, "-m", "lcnn", "pretrained", "list"], stdout=reader.stdin,
                         stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    reader.stdin.close()
    reader.wait()
    assert cmd.stderr == "" and cmd.returncode in (0, 141), cmd.stderr
