"""The scoring engine (`lcnn score`): every kind of INPUT, the score file and its forms, resuming after an
interruption, faulty files, windows of long recordings, the sharded feature cache, and two processes."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
from spoof_fixtures import RATE, write_noise

from lcnn.audio import frontend_config
from lcnn.cli import main
from lcnn.data.asvspoof import audio_path
from lcnn.data.features import FeatureCache
from lcnn.errors import DataError, UserError
from lcnn.score import read_input, read_scores, score_trials
from lcnn.score.data import TrialFeatures
from lcnn.score.trials import locate
from lcnn.score.writer import ScoreWriter
from lcnn.tasks import load_task


def _score(checkpoint: Path, corpus: Path, out: Path, *extra: str) -> int:
    return main(["score", str(checkpoint), str(corpus / "protocol.txt"), "--audio-dir", str(corpus / "flac"),
                 "--out", str(out), "--no-cache", "--num-workers", "0", "--batch-size", "3", *extra])  # fmt: skip


def test_every_kind_of_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("a.flac", "b.wav", "sub/c.flac"):
        write_noise(data / name, 0.1, seed=0)
    ids, paths = ["a", "b", "sub/c"], ["a.flac", "b.wav", os.path.join("sub", "c.flac")]

    def rows(table):
        return [table.ids[i] for i in range(len(table))], [table.paths[i] for i in range(len(table))]

    (data / "protocol.txt").write_text("LA_1 a - - bonafide\nLA_1 b - A01 spoof\nLA_2 sub/c - A02 spoof\n")
    protocol = read_input(data / "protocol.txt")  # ids without suffix: .flac, else the .wav that exists
    assert rows(protocol) == (ids, paths) and protocol.labelled and protocol.meta(1) == "A01 spoof"
    assert protocol.path(2) == str(data / "sub" / "c.flac") and list(protocol.sizes) == [os.path.getsize(data / p)
                                                                                         for p in paths]
    for header in ("path,label,speaker,attack\n", ""):  # a CSV with or without its header line
        (data / "list.csv").write_text(header + "a.flac,bonafide,LA_1,-\nsub/c.flac,spoof,LA_2,A02\n")
        table = read_input(data / "list.csv")
        assert rows(table) == (["a.flac", "sub/c.flac"], [paths[0], paths[2]]) and table.meta(1) == "A02 spoof"
    (data / "paths.txt").write_text("a.flac\nsub/c.flac\nb\n")  # a list of paths: ids as written
    assert rows(read_input(data / "paths.txt")) == (["a.flac", "sub/c.flac", "b"], [paths[0], paths[2], paths[1]])
    folder = read_input(data)  # every audio file under it, ids without suffix
    assert rows(folder) == (ids, paths) and not folder.labelled
    assert rows(read_input(data / "sub" / "c.flac")) == (["c"], ["c.flac"])  # one file
    (tmp_path / "elsewhere.txt").write_text("a\nnothing\n")  # relative to --audio-dir; a missing file is counted
    table = read_input(tmp_path / "elsewhere.txt", audio_dir=data)
    assert table.path(0) == str(data / "a.flac") and list(table.missing) == [1] and table.sizes[1] == -1
    for utt in ("a", "b", "sub/c", "sub/../a", "x.wav", "x.WAV", "nothing"):  # audio_path's rule, on strings
        assert data / locate(str(data), utt) == audio_path(data, utt), utt

    for text, error in (("a\na\nb\n", "1 duplicate trial ids, e.g. a"), ("../x\n/abs/y\na\n", "2 trials leave the "
                        "data folder"), ("\n", "no trials")):  # fmt: skip
        (data / "bad.txt").write_text(text)
        with pytest.raises(DataError, match=error):
            read_input(data / "bad.txt")
    with pytest.raises(DataError, match="no such protocol, list or folder"):
        read_input(data / "absent.txt")
    write_noise(data / "with space.flac", 0.1, seed=0)  # an id an ID SCORE line cannot hold
    (data / "tabbed.csv").write_text("a.flac,bonafide\nb\tc.flac,spoof\n")
    for given, utt in ((data, "with space"), (data / "tabbed.csv", "b\tc.flac")):
        with pytest.raises(DataError, match=f"^{re.escape(str(given))}: 1 trial ids contain whitespace, .* e.g. "
                                            f"{re.escape(repr(utt))}$"):  # fmt: skip
            read_input(given)


def test_score_file_forms_and_order(checkpoint: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "scores.txt"
    assert _score(checkpoint, corpus, out) == 0
    lines = [line.split() for line in out.read_text().splitlines()]
    protocol = [line.split() for line in (corpus / "protocol.txt").read_text().splitlines()]
    assert [u for u, _ in lines] == [p[1] for p in protocol]  # the input's order, not the length order of batches
    summary = capsys.readouterr().out
    assert "13 files: 13 scored, 0 failed; read 13 in" in summary and f"scores in {out} (fp32)" in summary
    assert not out.with_name("scores.txt.partial").exists()
    assert _score(checkpoint, corpus, tmp_path / "s2019.txt", "--format", "2019") == 0
    rows = [line.split() for line in (tmp_path / "s2019.txt").read_text().splitlines()]
    assert [r[:3] for r in rows] == [[p[1], p[3], p[4]] for p in protocol] and [r[3] for r in rows] == [s for _, s in
                                                                                                           lines]
    module, cfg, task = load_task(checkpoint)  # the same scores as one utterance at a time (the masked lcnn_lstm)
    for utt, score in lines[:2]:
        alone = task.predict(module, cfg, [corpus / "flac" / f"{utt}.flac"])[0].split("\t")[1]
        assert float(alone) == pytest.approx(float(score), abs=2e-6)
    capsys.readouterr()
    assert main(["score", str(checkpoint), str(corpus / "flac"), "--out", str(tmp_path / "x.txt"), "--format",
                 "2019"]) == 2  # fmt: skip
    assert "--format 2019 needs a key and attack for every trial" in capsys.readouterr().err


def test_resume_after_an_interruption_is_byte_identical(checkpoint: Path, corpus: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # fmt: skip
    whole, resumed = tmp_path / "whole.txt", tmp_path / "resumed.txt"
    assert _score(checkpoint, corpus, whole) == 0
    write = ScoreWriter.write_on_batch_end

    def killed_after_two_batches(self, trainer, *args, **kwargs):
        if trainer.predict_loop.batch_progress.current.completed == 2:
            self.files[0].write("12 0.5")  # half a line, as a kill in the middle of a write leaves
            self.files[0].flush()
            raise RuntimeError("killed")
        write(self, trainer, *args, **kwargs)

    monkeypatch.setattr(ScoreWriter, "write_on_batch_end", killed_after_two_batches)
    with pytest.raises(RuntimeError, match="killed"):
        _score(checkpoint, corpus, resumed)
    shard = tmp_path / "resumed.txt.partial" / "scores-rank0.txt"
    assert len(shard.read_text().splitlines()) == 7 and not resumed.exists()  # 2 batches of 3 and the torn line
    monkeypatch.undo()
    capsys.readouterr()
    assert _score(checkpoint, corpus, resumed, "--batch-size", "4") == 2  # other settings: refused
    assert "partial scores of a run with other settings (batch_size differ); remove it, or pass --restart" in \
        capsys.readouterr().err
    assert _score(checkpoint, corpus, resumed) == 0
    summary = capsys.readouterr().out
    assert "13 files: 13 scored, 0 failed; read 7 in" in summary and "skipped 6 (done before)" in summary
    assert resumed.read_bytes() == whole.read_bytes() and not shard.parent.exists()
    monkeypatch.setattr(ScoreWriter, "write_on_batch_end", killed_after_two_batches)
    with pytest.raises(RuntimeError, match="killed"):
        _score(checkpoint, corpus, resumed)
    monkeypatch.undo()
    assert _score(checkpoint, corpus, resumed, "--batch-size", "4", "--restart") == 0  # starts over
    assert not shard.parent.exists() and len(resumed.read_text().splitlines()) == 13


def test_a_resume_retries_what_failed(checkpoint: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys) -> None:  # fmt: skip
    """A passing fault (an I/O error) fails an item; the run is killed; the resumed run scores that item."""
    whole, resumed = tmp_path / "whole.txt", tmp_path / "resumed.txt"
    assert _score(checkpoint, corpus, whole) == 0
    read, write, faults = TrialFeatures.read, ScoreWriter.write_on_batch_end, []

    def io_error_once(self, i):
        if not faults:
            faults.append(i)
            raise OSError(errno.EIO, "Input/output error")
        return read(self, i)

    def killed_after_two_batches(self, trainer, *args, **kwargs):
        if trainer.predict_loop.batch_progress.current.completed == 2:
            raise RuntimeError("killed")
        write(self, trainer, *args, **kwargs)

    monkeypatch.setattr(TrialFeatures, "read", io_error_once)
    monkeypatch.setattr(ScoreWriter, "write_on_batch_end", killed_after_two_batches)
    with pytest.raises(RuntimeError, match="killed"):
        _score(checkpoint, corpus, resumed)
    assert "Input/output error" in (tmp_path / "resumed.txt.partial" / "failed-rank0.tsv").read_text()
    monkeypatch.undo()
    capsys.readouterr()
    assert _score(checkpoint, corpus, resumed) == 0
    summary = capsys.readouterr().out  # the failed item's batch again, then the rest
    assert "13 files: 13 scored, 0 failed; read 8 in" in summary and "skipped 5 (done before)" in summary
    assert resumed.read_bytes() == whole.read_bytes()


def test_a_full_cache_disk_costs_no_file(checkpoint: Path, corpus: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, caplog, capsys) -> None:  # fmt: skip
    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    assert _score(checkpoint, corpus, tmp_path / "plain.txt") == 0
    monkeypatch.setattr("lcnn.data.features.atomic_path", full)
    with caplog.at_level(logging.WARNING, logger="lcnn"):
        assert main(["score", str(checkpoint), str(corpus / "protocol.txt"), "--audio-dir", str(corpus / "flac"),
                     "--out", str(tmp_path / "cached.txt"), "--cache-dir", str(tmp_path / "cache"),
                     "--num-workers", "0", "--batch-size", "3"]) == 0  # fmt: skip
    assert "13 files: 13 scored, 0 failed" in capsys.readouterr().out
    warned = [r.getMessage() for r in caplog.records if "feature cache" in r.getMessage()]
    assert len(warned) == 1 and "cannot be written (" in warned[0] and "No space left on device" in warned[0]
    assert (tmp_path / "cached.txt").read_bytes() == (tmp_path / "plain.txt").read_bytes()


def test_unreadable_files_are_listed_and_strict_stops(checkpoint: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    flac = tmp_path / "flac"
    flac.mkdir()
    for f in (corpus / "flac").iterdir():
        os.link(f, flac / f.name)
    (flac / "LA_E_1000003.flac").unlink()
    (flac / "LA_E_1000003.flac").write_bytes(b"not audio at all" * 100)  # corrupt
    (flac / "LA_E_1000005.flac").unlink()  # missing
    (tmp_path / "protocol.txt").write_text((corpus / "protocol.txt").read_text())
    out = tmp_path / "scores.txt"
    assert _score(checkpoint, tmp_path, out) == 1
    summary = capsys.readouterr().out
    assert f"13 files: 11 scored, 2 failed (see {tmp_path / 'scores.failed.tsv'}); read 12 in" in summary
    with open(tmp_path / "scores.failed.tsv", newline="") as f:
        failed = list(csv.DictReader(f, delimiter="\t"))
    assert [(r["id"], r["path"]) for r in failed] == [(u, str(flac / f"{u}.flac")) for u in ("LA_E_1000003",
                                                                                             "LA_E_1000005")]
    assert "cannot decode audio" in failed[0]["reason"] and failed[1]["reason"] == "no such file"
    ids = [line.split()[0] for line in out.read_text().splitlines()]
    assert len(ids) == 11 and "LA_E_1000003" not in ids and "LA_E_1000005" not in ids
    whole = tmp_path / "whole.txt"
    assert _score(checkpoint, corpus, whole) == 0 and not (tmp_path / "whole.failed.tsv").exists()
    scored = dict(line.split() for line in whole.read_text().splitlines())
    for u, s in (line.split() for line in out.read_text().splitlines()):  # other batch mates: the last bits may move
        assert float(s) == pytest.approx(float(scored[u]), abs=2e-6), u

    (flac / "LA_E_1000005.flac").write_bytes((flac / "LA_E_1000004.flac").read_bytes())  # only the corrupt one left
    capsys.readouterr()
    assert _score(checkpoint, tmp_path, tmp_path / "strict.txt", "--strict") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith(f"lcnn: error: {flac / 'LA_E_1000003.flac'}: cannot decode audio") and "\n" not in err
    assert not (tmp_path / "strict.txt").exists()


class EnergyScore(L.LightningModule):
    """A model of known output: the mean over valid frames of the first feature (the LFCC log energy)."""

    def predict_step(self, batch, batch_idx):
        x, lengths, _, index = batch[:4]
        if not len(index):
            return torch.empty(0), index
        valid = torch.arange(x.shape[2])[None, :] < lengths[:, None]
        return (x[:, 0, :, 0] * valid).sum(1) / lengths, index


def test_windows_locate_a_spliced_stretch(tmp_path: Path) -> None:
    """20.5 s of loud noise with 8-12 s replaced by a quiet tone; an 8 kHz file (resampled per window); a file
    shorter than a window; a file cut short after its header."""
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal(int(20.5 * RATE))
    x[8 * RATE : 12 * RATE] = 0.003 * np.sin(2 * np.pi * 440 * np.arange(4 * RATE) / RATE)
    sf.write(tmp_path / "long.flac", x, RATE, subtype="PCM_16")
    write_noise(tmp_path / "narrow.wav", 5.0, seed=1, rate=8000)
    write_noise(tmp_path / "short.flac", 1.0, seed=2)
    cut = write_noise(tmp_path / "cut.flac", 6.0, seed=3)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # its header says 6 s
    (tmp_path / "list.txt").write_text("long\nnarrow\nshort\ncut\n")
    table = read_input(tmp_path / "list.txt")
    spans = {}
    for how in ("min", "mean", "quantile:0.5"):
        out = tmp_path / f"{how.replace(':', '')}.txt"
        summary = score_trials(EnergyScore(), table, out, frontend=frontend_config("lfcc"), batch_size=4, segment=2,
                               hop=1, aggregate=how, progress=False)  # fmt: skip
        assert summary.unit == "window" and summary.files == 3 and summary.failed == 1
        with open(summary.segments_file, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        spans = {}
        for r in rows:
            spans.setdefault(r["file"], []).append((float(r["start"]), float(r["end"]), float(r["score"])))
        scores = dict(line.split() for line in out.read_text().splitlines())
        for utt, windows in spans.items():
            s = np.array([w[2] for w in windows])
            expected = {"min": s.min(), "mean": s.mean(), "quantile:0.5": np.median(s)}[how]
            assert float(scores[utt]) == pytest.approx(expected, abs=2e-6), (how, utt)
    failed = summary.failed_file.read_text().splitlines()[1].split("\t")
    assert "cut" not in spans and failed[0] == "cut" and failed[2].startswith("at ") and "cannot decode" in failed[2]
    starts = [w[0] for w in spans["long"]]
    assert starts == [*range(19), 18.5] and all(end - start == 2 for start, end, _ in spans["long"])
    assert [(w[0], w[1]) for w in spans["narrow"]] == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert [(w[0], w[1]) for w in spans["short"]] == [(0, 1)]
    low = min(spans["long"], key=lambda w: w[2])
    assert 8 <= low[0] and low[1] <= 12  # the lowest-scoring window lies in the spliced stretch
    inside = [w[2] for w in spans["long"] if 8 <= w[0] and w[1] <= 12]
    outside = [w[2] for w in spans["long"] if w[1] <= 8 or w[0] >= 12]
    assert max(inside) < min(outside) - 3  # log10 energy: 30 dB quieter


def test_a_truncated_wav_fails_in_windows_as_whole(tmp_path: Path) -> None:
    """A WAV whose header declares 3 s and that holds 1.5: libsndfile counts 1.5 s from the file's size."""
    cut = write_noise(tmp_path / "cut.wav", 3.0, seed=3)
    cut.write_bytes(cut.read_bytes()[: -2 * 24000])
    assert sf.info(cut).frames == 24000
    write_noise(tmp_path / "fine.wav", 3.0, seed=4)
    (tmp_path / "list.txt").write_text("cut\nfine\n")
    table = read_input(tmp_path / "list.txt")
    reasons = {}
    for segment in (None, 1.0):
        summary = score_trials(EnergyScore(), table, tmp_path / f"s{segment}.txt", frontend=frontend_config("lfcc"),
                               segment=segment, progress=False)  # fmt: skip
        assert (summary.files, summary.failed) == (1, 1)
        reasons[segment] = summary.failed_file.read_text().splitlines()[1].split("\t")[2]
    assert reasons[None] == "truncated audio, the header declares 48000 frames but only 24000 decode"
    assert reasons[1.0] == "at 1.00-2.00 s: truncated audio, the header declares 16000 frames but only 8000 decode"


class Flags(EnergyScore):
    """EnergyScore, noting the TF32 flags while it scores."""

    seen: list = []

    def predict_step(self, batch, batch_idx):
        Flags.seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return super().predict_step(batch, batch_idx)


def test_fp32_scoring_turns_tf32_off(corpus: Path, tmp_path: Path) -> None:
    """torch's default lets cuDNN run fp32 convolutions in TF32; the reference scores must not."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    table = read_input(corpus / "protocol.txt", corpus / "flac")
    try:
        for precision, inside in (("32-true", (False, False)), ("bf16-mixed", (True, True))):
            Flags.seen = []
            score_trials(Flags(), table, tmp_path / "s.txt", frontend=frontend_config("lfcc"), batch_size=5,
                         precision=precision, progress=False)  # fmt: skip
            assert set(Flags.seen) == {inside}, precision
            assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)  # restored
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_predict_scores_long_files_whole_or_in_the_windows_asked_for(checkpoint: Path, corpus: Path,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    long = write_noise(tmp_path / "long.flac", 9.0, seed=5)
    short = corpus / "flac" / "LA_E_1000000.flac"
    module, cfg, task = load_task(checkpoint)
    quoted, tabbed = tmp_path / '"quoted.flac', tmp_path / "tab\there.flac"  # no quoting of its own output
    os.link(long, quoted)
    os.link(long, tabbed)
    assert task.predict(module, cfg, [quoted, tabbed, long])[0].split("\t")[1:] == \
        task.predict(module, cfg, [long])[0].split("\t")[1:]  # fmt: skip
    whole = task.predict(module, cfg, [long])[0].split("\t")
    assert len(whole) == 3  # the whole file: no windows unless asked for
    short_line, long_line = task.predict(module, cfg, [short, long], segment=4, hop=2)
    assert len(short_line.split("\t")) == 3 and short_line.endswith("\t-")  # no threshold in this checkpoint
    name, score, decision, lowest = long_line.split("\t")
    assert name == str(long) and lowest.startswith("lowest ") and lowest.split()[1] in ("0.00-4.00", "2.00-6.00",
                                                                                        "4.00-8.00", "5.00-9.00")
    (tmp_path / "one.txt").write_text("long.flac\n")
    assert main(["score", str(checkpoint), str(tmp_path / "one.txt"), "--segment", "4", "--hop", "2", "--out",
                 str(tmp_path / "s.txt"), "--num-workers", "0"]) == 0  # fmt: skip
    windows = [float(r.split("\t")[3]) for r in (tmp_path / "s.segments.tsv").read_text().splitlines()[1:]]
    assert len(windows) == 4 and float(score) == pytest.approx(np.mean(windows), abs=2e-6)
    assert main(["score", str(checkpoint), str(tmp_path / "one.txt"), "--out", str(tmp_path / "s.txt"),
                 "--num-workers", "0"]) == 0  # fmt: skip
    assert not (tmp_path / "s.segments.tsv").exists()  # the windows of the run before would mislead
    assert float(whole[1]) == pytest.approx(float((tmp_path / "s.txt").read_text().split()[1]), abs=2e-6)


def test_sharded_cache_old_entries_and_the_cache_command(corpus: Path, tmp_path: Path, capsys) -> None:
    root, audio = tmp_path / "cache", corpus / "flac" / "LA_E_1000000.flac"
    cache = FeatureCache(frontend_config("lfcc"), root)
    feats = cache.get("LA_E_1000000", audio)
    entry = cache.entry("LA_E_1000000", audio)
    assert entry.is_file() and entry.parent.parent == cache.dir and len(entry.parent.name) == 2
    assert len({cache.entry(f"LA_E_{i}", audio).parent.name for i in range(3000)}) == 256
    torch.testing.assert_close(cache.get("LA_E_1000000", audio), feats)
    entry.unlink()  # the flat layout of earlier versions: read where it is, and moved into its subfolder
    np.save(cache.dir / entry.name, np.full((3, 60), 7, np.float32))
    assert (cache.get("LA_E_1000000", audio) == 7).all() and entry.is_file() and not (cache.dir / entry.name).exists()
    spec = FeatureCache(frontend_config("spec"), root)
    spec.get("LA_E_1000000", audio)

    capsys.readouterr()
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    info = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in info[1:]] == [[cache.dir.name, "1"], [spec.dir.name, "1"], ["total", "2"]]
    assert main(["cache", "clear", "--cache-dir", str(root), "--frontend", "lfcc"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == [cache.dir.name, "1"] and not cache.dir.exists()
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0 and "spec-" in capsys.readouterr().out
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    assert capsys.readouterr().out.strip() == f"{root}: no cached features"


def test_two_processes_write_the_file_of_one(checkpoint: Path, corpus: Path, tmp_path: Path) -> None:
    """Lightning's DDP over two CPU processes (gloo): 5 batches split 3 / 2, a missing file, one merged file."""
    (tmp_path / "protocol.txt").write_text((corpus / "protocol.txt").read_text() + "LA_0001 LA_E_9 - A01 spoof\n")
    base = [sys.executable, "-m", "lcnn", "score", str(checkpoint), str(tmp_path / "protocol.txt"), "--audio-dir",
            str(corpus / "flac"), "--batch-size", "3", "--no-cache", "--num-workers", "0", "--accelerator", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([*base, "--out", str(tmp_path / "one.txt")], env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    two = subprocess.run([*base, "--out", str(tmp_path / "two.txt"), "--devices", "2", "--strategy", "ddp"], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (one.returncode, two.returncode) == (1, 1), two.stderr[-2000:]  # the missing file
    assert (tmp_path / "two.txt").read_bytes() == (tmp_path / "one.txt").read_bytes()
    assert len((tmp_path / "two.txt").read_text().splitlines()) == 13
    assert (tmp_path / "two.failed.tsv").read_text().splitlines()[1].startswith("LA_E_9\t")
    assert two.stdout.count("14 files: 13 scored, 1 failed") == 1  # the summary of process 0 only


def test_refusals(checkpoint: Path, corpus: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    table = read_input(corpus / "protocol.txt", corpus / "flac")
    module = EnergyScore()
    for kwargs, error in (({"aggregate": "median", "segment": 1}, "--aggregate 'median'"),
                          ({"hop": 1}, "--hop needs --segment"), ({"segment": -1}, "must be finite positive"),
                          ({"segment": 0}, "must be finite positive"), ({"segment": float("nan")}, "finite positive"),
                          ({"segment": 1, "hop": 0}, "must be finite positive"),
                          ({"form": "2020"}, "--format '2020'"), ({"batch_size": 0}, "--batch-size")):  # fmt: skip
        with pytest.raises(UserError, match=error):
            score_trials(module, table, tmp_path / "s.txt", frontend=frontend_config("lfcc"), **kwargs)
    assert main(["score", str(checkpoint), str(tmp_path / "nothing.txt")]) == 2

    def not_scored(*args, **kwargs):
        raise AssertionError("scored before refusing the options")

    capsys.readouterr()
    (tmp_path / "folder").mkdir()
    for options, error in (
        (["--precision", "foo"], "cannot score with .*--precision foo: Precision 'foo' is invalid"),
        (["--accelerator", "foo"], "cannot score with --accelerator foo, .*invalid accelerator name"),
        (["--strategy", "foo"], "--strategy foo.*: You selected an invalid strategy name"),
        (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
        (["--devices", "0"], "argument --devices: must be at least 1, got 0"),
        (["--num-nodes", "0"], "argument --num-nodes: must be at least 1, got 0"),
        (["--num-workers", "-1"], "argument --num-workers: must be at least 0, got -1"),
        (["--segment", "0"], "argument --segment: must be a finite number above 0, got 0"),
        (["--out", str(tmp_path / "folder")], f"--out {tmp_path / 'folder'}: a folder; expected the score file"),
        (["--out", str(tmp_path / "s.txt" / "x.txt")], "cannot write into .*s.txt \\(expected a writable folder\\)"),
    ):  # fmt: skip
        (tmp_path / "s.txt").write_text("a file, not a folder")
        with monkeypatch.context() as m:
            m.setattr(ScoreWriter, "write_on_batch_end", not_scored)
            code = main(["score", str(checkpoint), str(corpus / "protocol.txt"), "--audio-dir", str(corpus / "flac"),
                         "--no-cache", "--out", str(tmp_path / "out.txt"), *options])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and re.search(error, err), (options, err)
    assert not (tmp_path / "folder.partial").exists() and not (tmp_path / "out.txt.partial").exists()


def test_evaluate_lists_what_it_could_not_score(checkpoint: Path, corpus: Path, tmp_path: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    flac = tmp_path / "flac"
    flac.mkdir()
    for f in (corpus / "flac").iterdir():
        os.link(f, flac / f.name)
    (flac / "LA_E_1000002.flac").unlink()
    (flac / "LA_E_1000002.flac").write_bytes(b"RIFF" + bytes(100))
    out = tmp_path / "ev"
    stale = out / "scores-eval-2021.txt.partial"  # a killed evaluate of other settings: evaluate starts over
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text('{"fingerprint": {"batch_size": 1}}')
    (stale / "scores-rank0.txt").write_text("0 0.5\n")
    from lcnn.score import engine
    from lcnn.tasks.spoof import report
    from lcnn.tasks.spoof import task as spoof_task

    written, reported, write_lines, write_report = [], [], engine.write_score_file, report.write_report

    def count_writes(path, *args):
        written.append(Path(path).name)
        return write_lines(path, *args)

    def keep_scores(out_dir, results, *args, **kwargs):
        reported.append(results["eval"][1])
        return write_report(out_dir, results, *args, **kwargs)

    monkeypatch.setattr(engine, "write_score_file", count_writes)
    monkeypatch.setattr(report, "write_score_file", count_writes)
    monkeypatch.setattr(spoof_task, "write_report", keep_scores)  # where evaluate finds it
    assert main(["evaluate", str(checkpoint), "--data", "custom", "--data-dir", str(flac), "--protocol",
                 f"eval={corpus / 'protocol.txt'}", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 1
    assert sorted(written) == ["scores-eval-2021.txt", "scores-eval.txt"]  # each once
    file = read_scores(out / "scores-eval-2021.txt").scores
    assert (reported[0] != file).any()  # the exact scores, not the file read back
    assert np.array_equal(file.astype(np.float32), reported[0].astype(np.float32))  # which gives back every float32
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["failed"], metrics["eval_count"]) == (1, 12)  # the metrics of the 12 that were scored
    assert Path(metrics["failed_file"]).read_text().splitlines()[1].startswith("LA_E_1000002\t")
    assert len((out / "scores-eval.txt").read_text().splitlines()) == 12


@pytest.mark.slow
def test_kill_9_then_the_same_command_is_byte_identical(checkpoint: Path, corpus: Path, tmp_path: Path) -> None:
    """A real SIGKILL of the command and its DataLoader worker in the middle of a run of 400 trials.

    Slow: three processes of `lcnn score` start torch and Lightning; at 120 trials killed after 10 scores it took
    85 s on the shared 2 cores (the trials count little), not the few seconds of the default run, which keeps the
    simulated kill (test_resume_after_an_interruption_is_byte_identical)."""
    flac = tmp_path / "flac"
    flac.mkdir()
    sources = sorted((corpus / "flac").iterdir())
    for i in range(400):
        os.link(sources[i % len(sources)], flac / f"T{i:04d}.flac")
    (tmp_path / "list.txt").write_text("".join(f"flac/T{i:04d}\n" for i in range(400)))
    base = [sys.executable, "-m", "lcnn", "score", str(checkpoint), str(tmp_path / "list.txt"), "--batch-size", "2",
            "--no-cache", "--num-workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*base, "--out", str(tmp_path / "whole.txt")], env=env, check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen([*base, "--out", str(tmp_path / "killed.txt")], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    shard = tmp_path / "killed.txt.partial" / "scores-rank0.txt"
    while proc.poll() is None and not (shard.exists() and shard.read_bytes().count(b"\n") >= 100):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not (tmp_path / "killed.txt").exists()
    done = shard.read_bytes().count(b"\n")
    assert 100 <= done < 400  # killed mid-run, not after it
    resumed = subprocess.run([*base, "--out", str(tmp_path / "killed.txt")], env=env, check=True, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert f"skipped {done} (done before)" in resumed.stdout  # every complete line
    assert (tmp_path / "killed.txt").read_bytes() == (tmp_path / "whole.txt").read_bytes()


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "int8"])
def test_on_a_cpu_the_workers_score_as_the_main_process(checkpoint: Path, corpus: Path, tmp_path: Path,
                                                        precision: str) -> None:  # fmt: skip
    """Workers that decode, compute features and score (the CPU default) give the main process's scores, in the
    input's order, at every precision; and the engine hands the model to them only on a CPU with workers."""
    from lcnn.inference import int8_dynamic_unavailable

    if precision == "int8" and int8_dynamic_unavailable():
        pytest.skip(int8_dynamic_unavailable())
    outs = {}
    for workers in ("0", "2"):
        outs[workers] = tmp_path / f"w{workers}.txt"
        assert _score(checkpoint, corpus, outs[workers], "--num-workers", workers, "--precision", precision) == 0
    main_, workers_ = (read_scores(outs[w]) for w in ("0", "2"))
    assert list(main_.ids) == list(workers_.ids) == [line.split()[1] for line in (corpus / "protocol.txt")
                                                     .read_text().splitlines()]  # fmt: skip
    np.testing.assert_allclose(workers_.scores, main_.scores, rtol=0, atol=1e-5)
    assert np.ptp(main_.scores) > 0

