"""`lcnn calibrate` and `lcnn fuse` end to end through the command line on synthetic score files; the calibration
stored into a checkpoint and read back by load_task, and used by evaluate and predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import expit
from test_spoof_task import make_la_tree

from lcnn.cli import main
from lcnn.errors import UserError
from lcnn.metrics import Calibration, act_dcf, min_dcf
from lcnn.metrics.dcf import bayes_threshold
from lcnn.score.files import read_scores, write_score_file
from lcnn.tasks import get_task, load_task

N = 1000  # trials per class


def _system(rng: np.random.Generator, shared: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Scores of one system: the trial's class signal and shared difficulty, its own noise, its own scale."""
    return scale * (shared + rng.normal(0, 1.2, shared.size)) + offset


def _data(tmp_path: Path, split: str, seed: int) -> tuple[Path, list[Path], np.ndarray]:
    """A key of ``N`` bona fide and ``N`` spoofed trials (2019 LA form) and two systems' scores, miscalibrated."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([1, 0], N)
    ids = [f"LA_{split[0].upper()}_{i:07d}" for i in range(2 * N)]
    key = tmp_path / f"{split}-key.txt"
    key.write_text("".join(f"LA_0001 {u} - {'-' if y else 'A01'} {'bonafide' if y else 'spoof'}\n"
                           for u, y in zip(ids, labels)))  # fmt: skip
    shared = np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 0.5, 2 * N)
    files = []
    for i, (scale, offset) in enumerate(((3.0, 7.0), (0.2, -1.0))):
        files.append(write_score_file(tmp_path / f"{split}-sys{i + 1}.txt", ids, _system(rng, shared, scale, offset)))
    return key, files, labels


def test_calibrate_brings_act_dcf_to_min_dcf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, (dev, _), labels = _data(tmp_path, "dev", 0)
    out = tmp_path / "calib.json"
    assert main(["calibrate", str(dev), "--protocol", str(key), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    calibration = Calibration.from_dict(written["calibration"])
    assert written["scores"] == str(dev) and written["protocol"] == str(key) and calibration.p_spoof == 0.05
    raw, calibrated = written["dev"]["raw scores"], written["dev"]["calibrated"]
    assert raw["act_dcf"] - raw["min_dcf"] > 0.25  # raw scores around 7, read as LLRs: most spoofs accepted
    assert calibrated["act_dcf"] - calibrated["min_dcf"] < 0.02 and calibrated["min_dcf"] == raw["min_dcf"]
    assert calibrated["cllr"] < 0.75 and raw["cllr"] > 3 and calibrated["eer"] == raw["eer"]
    scores = read_scores(dev).scores
    assert calibrated["act_dcf"] == act_dcf(*(calibration.apply(scores[labels == c]) for c in (1, 0)))
    printed = capsys.readouterr().out
    assert "1000 bona fide, 1000 spoof; Pspoof 0.05, Cmiss 1, Cfa 10" in printed and "written to" in printed
    assert f"llr = {calibration.a:.6g} * score - {-calibration.b:.6g}" in printed
    # a run's scores-dev.txt carries its key: no --protocol needed, the same fit
    labelled = tmp_path / "scores-dev.txt"
    labelled.write_text("".join(f"{u} - {'bonafide' if y else 'spoof'} {x!r}\n"
                                for u, y, x in zip(read_scores(dev).ids, labels, scores.tolist())))  # fmt: skip
    assert main(["calibrate", str(labelled), "--out", str(tmp_path / "same.json")]) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    assert same["calibration"] == written["calibration"] and same["protocol"] == f"the labels of {labelled}"
    # another operating point: the fit follows it
    assert main(["calibrate", str(dev), "--key", str(key), "--out", str(out), "--p-spoof", "0.5"]) == 0
    assert json.loads(out.read_text())["calibration"]["p_spoof"] == 0.5


def test_calibrate_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, (dev, _), _ = _data(tmp_path, "dev", 0)
    lines = dev.read_text().splitlines()
    (tmp_path / "short.txt").write_text("\n".join(lines[:-3]) + "\n")
    out = str(tmp_path / "c.json")
    assert main(["calibrate", str(tmp_path / "short.txt"), "--protocol", str(key), "--out", out]) == 2
    assert capsys.readouterr().err == (f"lcnn: error: {tmp_path / 'short.txt'}: 3 of 2000 trials of {key} have no "
                                       f"score, e.g. LA_D_0001997, LA_D_0001998, LA_D_0001999\n")  # fmt: skip
    assert main(["calibrate", str(dev), "--out", out]) == 2  # no key, and the file carries none
    assert capsys.readouterr().err == f"lcnn: error: {dev} carries no labels: give the key with --protocol KEY\n"
    (tmp_path / "list.txt").write_text("".join(line.split()[0] + "\n" for line in lines))
    assert main(["calibrate", str(dev), "--protocol", str(tmp_path / "list.txt"), "--out", out]) == 2
    assert "a trial list without labels; calibrating needs the dev key" in capsys.readouterr().err
    assert not Path(out).exists()


def _checkpoint(path: Path, seed: int = 0) -> tuple[Path, dict]:
    """An untrained spoof checkpoint as lcnn writes them (a 64-frame lcnn on the spectrogram up to 4 kHz)."""
    hparams = {"model": "lcnn", "n_features": 128, "frames": 64, "loss": "sigmoid", "dropout": None,
               "frontend": {"name": "spec", "sample_rate": 16000, "n_fft": 512, "win_length": 320, "hop_length": 160,
                            "window": "hann", "f_max": 4000.0, "pre_emphasis": None, "trim_silence": True},
               "lr": 0.0003, "optimizer": "adam", "weight_decay": 0.0, "schedule": "step:10:0.5", "channels_last": True}
    torch.manual_seed(seed)
    module = get_task("spoof").restore(dict(hparams), "test")
    module.threshold.fill_(0.0)
    ckpt = {"lcnn_task": "spoof", "hyper_parameters": hparams, "state_dict": module.state_dict(), "epoch": 3,
            "lcnn_config": {"task": "spoof", "data": "asvspoof2019-la", "model": "lcnn", "frames": 64}}
    torch.save(ckpt, path)
    return path, ckpt


@pytest.fixture(scope="module")
def la_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_la_tree(tmp_path_factory.mktemp("la"))


def _not_scored(*args, **kwargs):
    raise AssertionError("scored before refusing the options")


def test_calibration_in_the_checkpoint(tmp_path: Path, la_tree: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    path, original = _checkpoint(tmp_path / "best.ckpt")
    module, cfg, task = load_task(path)
    assert module.calibration is None
    flac = sorted((la_tree / "LA" / "ASVspoof2019_LA_eval" / "flac").iterdir())[:3]
    plain = task.predict(module, cfg, [str(f) for f in flac])
    assert all(len(line.split("\t")) == 3 for line in plain)
    with monkeypatch.context() as m, pytest.raises(UserError, match=r"--prior needs a calibrated checkpoint"):
        m.setattr("lcnn.score.score_trials", _not_scored)  # refused before any file is scored
        task.predict(module, cfg, [str(flac[0])], prior=0.5)

    key, (dev, _), _ = _data(tmp_path, "dev", 0)
    assert main(["calibrate", str(dev), "--protocol", str(key), "--out", str(tmp_path / "c.json"),
                 "--checkpoint", str(path)]) == 0  # fmt: skip
    assert f"stored in {path}" in capsys.readouterr().out
    stored = torch.load(path, map_location="cpu", weights_only=True)
    calibration = Calibration.from_dict(json.loads((tmp_path / "c.json").read_text())["calibration"])
    assert stored["lcnn_calibration"] == calibration.to_dict()
    assert {k: v for k, v in stored.items() if k not in ("lcnn_calibration", "state_dict")} == \
        {k: v for k, v in original.items() if k != "state_dict"}
    torch.testing.assert_close(stored["state_dict"], original["state_dict"], rtol=0, atol=0)  # weights untouched
    assert sorted(p.name for p in tmp_path.glob("*.ckpt*")) == ["best.ckpt"]  # written atomically

    module, cfg, task = load_task(path)
    assert module.calibration == calibration
    lines = [line.split("\t") for line in task.predict(module, cfg, [str(f) for f in flac])]
    for (file, score, llr, decision, posterior), old in zip(lines, plain):
        assert file == old.split("\t")[0] and score == old.split("\t")[1]
        assert float(llr) == pytest.approx(calibration.a * float(score) + calibration.b, abs=1e-5)
        bayes = bayes_threshold(calibration.p_spoof, calibration.c_miss, calibration.c_fa)
        assert decision == ("bonafide" if float(llr) >= bayes else "spoof")
        assert float(posterior) == pytest.approx(expit(float(llr) + np.log(0.95 / 0.05)), abs=1e-6)
    capsys.readouterr()
    assert main(["predict", str(path), str(flac[0]), "--prior", "0.5"]) == 0
    file, score, llr, decision, posterior = capsys.readouterr().out.strip().split("\t")
    assert float(posterior) == pytest.approx(expit(float(llr)), abs=1e-6)
    assert main(["predict", str(path), str(flac[0]), "--threshold", "1e9"]) == 0
    assert capsys.readouterr().out.split("\t")[3] == "spoof"  # --threshold decides on the score, as before
    assert main(["predict", str(path), str(flac[0]), "--threshold", "nan"]) == 2  # a threshold is a finite number
    assert "argument --threshold: must be a finite number, got nan" in capsys.readouterr().err
    with monkeypatch.context() as m:
        m.setattr("lcnn.score.score_trials", _not_scored)
        assert main(["predict", str(path), str(flac[0]), "--prior", "1.5"]) == 2
    assert "argument --prior: must be between 0 and 1 (exclusive), got 1.5" in capsys.readouterr().err

    # evaluate reports the LLRs' act DCF and Cllr beside the raw scores'
    result = task.evaluate(module, cfg, tmp_path / "ev", data_dir=str(la_tree), cache_dir=str(tmp_path / "cache"))
    for name in ("eval_act_dcf", "eval_act_dcf_raw", "eval_cllr", "eval_cllr_raw", "eval_min_cllr", "eval_min_dcf"):
        assert isinstance(result[name], float), name
    assert result["calibration"] == calibration.to_dict()
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["tables"]["eval"]["pooled"]["act_dcf"] == \
        result["eval_act_dcf"]
    llrs = read_scores(tmp_path / "ev" / "llrs-eval.txt")
    raw = read_scores(tmp_path / "ev" / "scores-eval-2021.txt")
    assert llrs.ids == raw.ids and np.allclose(llrs.scores, calibration.apply(raw.scores), atol=1e-5)
    assert "Calibrated: llr =" in (tmp_path / "ev" / "report.md").read_text()

    torch.save({**stored, "lcnn_calibration": {"type": "calibration", "a": 1.0}}, path)
    with pytest.raises(UserError, match=r"best.ckpt: lcnn_calibration: calibration: missing keys \['b', 'p_spoof'"):
        load_task(path)


def test_calibrate_refuses_other_tasks_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hparams = {"model": "lcnn", "num_classes": 10, "input_shape": (1, 28, 28), "classes": list("0123456789")}
    module = get_task("classify").restore(dict(hparams), "x")
    torch.save({"lcnn_task": "classify", "hyper_parameters": hparams, "state_dict": module.state_dict()},
               tmp_path / "digits.ckpt")  # fmt: skip
    key, (dev, _), _ = _data(tmp_path, "dev", 0)
    assert main(["calibrate", str(dev), "--protocol", str(key), "--out", str(tmp_path / "c.json"),
                 "--checkpoint", str(tmp_path / "digits.ckpt")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "digits.ckpt: a classify checkpoint; a calibration maps the scores of spoof models" in err


def test_fusion_beats_each_system(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev_key, dev, _ = _data(tmp_path, "dev", 0)
    eval_key, evals, labels = _data(tmp_path, "eval", 1)
    out = tmp_path / "fused.tsv"
    assert main(["fuse", *map(str, dev), "--protocol", str(dev_key), "--apply", *map(str, evals),
                 "--out", str(out)]) == 0  # fmt: skip
    fused = read_scores(out)
    assert out.read_text().startswith("filename\tcm-score\n") and fused.ids == read_scores(evals[0]).ids
    bona = labels == 1

    def dcf(scores: np.ndarray) -> float:
        return min_dcf(scores[bona], scores[~bona])

    systems = [dcf(read_scores(f).scores) for f in evals]
    assert dcf(fused.scores) < min(systems) - 0.02, (dcf(fused.scores), systems)
    assert act_dcf(fused.scores[bona], fused.scores[~bona]) - dcf(fused.scores) < 0.05  # the fused scores are LLRs
    weights = json.loads((tmp_path / "fused.json").read_text())
    assert weights["systems"] == [str(f) for f in dev] and weights["applied_to"] == [str(f) for f in evals]
    assert len(weights["fusion"]["weights"]) == 2
    assert weights["dev"]["fused"]["min_dcf"] < min(weights["dev"][f"dev-sys{i}.txt"]["min_dcf"] for i in (1, 2))
    printed = capsys.readouterr().out
    assert "weight" in printed and "fused" in printed and f"into {out}" in printed

    # without --apply: the dev files fused, written as ID SCORE
    assert main(["fuse", *map(str, dev), "--protocol", str(dev_key), "--out", str(tmp_path / "dev-fused.txt"),
                 "--weights", str(tmp_path / "w.json")]) == 0  # fmt: skip
    assert read_scores(tmp_path / "dev-fused.txt").ids == read_scores(dev[0]).ids


def test_fusion_refuses_misaligned_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev_key, dev, _ = _data(tmp_path, "dev", 0)
    _, evals, _ = _data(tmp_path, "eval", 1)
    lines = evals[1].read_text().splitlines()
    shifted = tmp_path / "eval-sys2-other.txt"
    shifted.write_text("\n".join(lines[2:] + ["LA_E_9999999 0.5"]) + "\n")
    out = tmp_path / "fused.txt"
    args = ["fuse", *map(str, dev), "--protocol", str(dev_key), "--out", str(out), "--apply"]
    assert main([*args, str(evals[0]), str(shifted)]) == 2
    assert capsys.readouterr().err == (
        f"lcnn: error: {shifted}: 2 of 2000 trials of {evals[0]} have no score, e.g. LA_E_0000000, LA_E_0000001; "
        f"1 scored id is not in {evals[0]}, e.g. LA_E_9999999 (line 1999): the scores of another subset or protocol?\n")
    assert main([*args, str(evals[0])]) == 2
    assert "2 dev score files but 1 in --apply: give the same systems, in the same order" in capsys.readouterr().err
    wrong_dev = tmp_path / "dev-wrong.txt"
    wrong_dev.write_text(evals[0].read_text())  # eval scores given as dev
    assert main(["fuse", str(dev[0]), str(wrong_dev), "--protocol", str(dev_key), "--out", str(out)]) == 2
    assert "dev-wrong.txt: 2000 of 2000 trials of" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "fused.json").exists()


def test_evaluate_several_checkpoints_with_one_det_plot(tmp_path: Path, la_tree: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    runs = []
    for name, seed in (("A", 0), ("B", 1)):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        _checkpoint(tmp_path / name / "checkpoints" / "best.ckpt", seed)
        runs.append(str(tmp_path / name))
    common = ["--data-dir", str(la_tree), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "ev")]
    assert main(["evaluate", *runs, *common, "--plot", str(tmp_path / "det.png")]) == 0
    printed = capsys.readouterr().out
    for name in ("A", "B"):
        assert (tmp_path / "ev" / name / "report.md").is_file() and f"written to {tmp_path / 'ev' / name}" in printed
    assert f"DET plot: {tmp_path / 'det.png'}" in printed and (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"
    a, b = ((tmp_path / "ev" / n / "scores-eval.txt").read_text() for n in ("A", "B"))
    assert a.split()[::4] == b.split()[::4] and a != b  # two systems' scores of the same trials
    assert main(["evaluate", runs[0], runs[0], *common]) == 2  # the same run twice: one folder for both
    assert "its results would overwrite another's" in capsys.readouterr().err
