"""The spoof evaluation's reports: the score check first, pooled and per-condition tables (attack, codec, subset...)
in metrics.json and report.md, calibrated metrics (act DCF and Cllr before and after), and the DET overlay."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from lcnn.data.corpora import get_corpus
from lcnn.data.protocols import Trial
from lcnn.errors import DataError
from lcnn.metrics import Calibration, act_dcf, cllr, compute_eer, min_cllr, min_dcf, min_tdcf
from lcnn.score.files import read_scores
from lcnn.tasks.spoof import report as spoof_report
from lcnn.tasks.spoof.data import SpoofDataModule
from lcnn.tasks.spoof.report import write_det_overlay, write_report


def _asvspoof5_trials(n: int = 400, seed: int = 0) -> tuple[list[Trial], np.ndarray]:
    """Trials as the ASVspoof 5 reader makes them: codec (both classes), gender, attack and attack tag (spoofs);
    the codec C05 makes every trial harder, attack A20 is harder than A17."""
    rng = np.random.default_rng(seed)
    trials, scores = [], []
    for i in range(n):
        spoof = i % 2 == 1
        codec = ("-", "C05")[(i // 2) % 2]
        attack = ("A17", "A20")[(i // 4) % 2] if spoof else "-"
        conditions = {"gender": "FM"[i % 3 == 0], "codec": codec, "codec_q": "-" if codec == "-" else "3"}
        if spoof:
            conditions["attack_tag"] = "AC1"
        trials.append(Trial(f"E_{i:010d}", "spoof" if spoof else "bonafide", attack, "E_0001", conditions=conditions))
        mean = (-1.0 if attack == "A17" else -0.3) if spoof else 1.0
        scores.append(rng.normal(mean * (0.5 if codec == "C05" else 1), 1) * 3 + 7)  # miscalibrated on purpose
    return trials, np.array(scores)


def test_per_condition_tables_and_report(tmp_path: Path) -> None:
    trials, scores = _asvspoof5_trials()
    metrics = write_report(tmp_path, {"eval": (trials, scores)}, 7.0, None, "asvspoof5")
    for name in ("scores-eval.txt", "scores-eval-2021.txt", "eer-eval.txt", "eer_tables.json", "det.png", "report.md"):
        assert (tmp_path / name).is_file(), name  # what write_report wrote before, and the report
    bona = np.array([t.key == "bonafide" for t in trials])
    codec = np.array([t.conditions["codec"] for t in trials])
    attack = np.array([t.attack for t in trials])
    table = metrics["tables"]["eval"]
    assert table["pooled"] == {"n_bonafide": 200, "n_spoof": 200, "eer": compute_eer(scores[bona], scores[~bona])[0],
                               "min_dcf": min_dcf(scores[bona], scores[~bona])}  # fmt: skip
    assert metrics["eval_min_dcf"] == table["pooled"]["min_dcf"] and metrics["eval_eer"] == table["pooled"]["eer"]
    assert list(table["conditions"]) == ["attack", "gender", "codec", "codec_q"]  # attack_tag: one value, left out
    conditions = table["conditions"]
    assert conditions["attack"]["slices"] == "spoof" and conditions["codec"]["slices"] == "both"
    a20 = conditions["attack"]["rows"]["A20"]  # A20's spoofs against every bona fide trial
    assert (a20["n_bonafide"], a20["n_spoof"]) == (200, 100)
    assert a20["eer"] == compute_eer(scores[bona], scores[attack == "A20"])[0]
    c05 = conditions["codec"]["rows"]["C05"]  # C05's bona fide against C05's spoofs
    assert (c05["n_bonafide"], c05["n_spoof"]) == (100, 100)
    assert c05["min_dcf"] == min_dcf(scores[bona & (codec == "C05")], scores[~bona & (codec == "C05")])
    assert c05["eer"] > conditions["codec"]["rows"]["-"]["eer"]
    assert a20["eer"] > conditions["attack"]["rows"]["A17"]["eer"]
    assert "act_dcf" not in table["pooled"] and "eval_act_dcf" not in metrics  # not calibrated: no LLR metrics
    # ASVspoof 5 without ASV scores: the revised min t-DCF at the organisers' ASV error rates
    # the organisers' pooled ASV rates as the fixture README gives them (Pfa_asv, Pmiss_asv, Pfa_spoof_asv), not
    # the implementation's own constant (the corpus registry's asv_rates)
    organisers = (0.01881016557566423, 0.01880141010575793, 0.4607082907604729)
    assert get_corpus("asvspoof5").asv_rates == organisers
    tdcf = min_tdcf(scores[bona], scores[~bona], asv_rates=organisers, revised=True)
    assert metrics["eval_min_tdcf"] == tdcf
    json.dumps(metrics)  # JSON-ready
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# asvspoof5: spoof evaluation\n")
    assert "## eval: per codec\n\nThe bona fide and spoofed trials of each codec.\n\n| codec | bona fide |" in report
    assert "## eval: per attack\n\nEach attack's spoofed trials against all bona fide trials." in report
    assert f"| A20 | 200 | 100 | {100 * a20['eer']:.3f} | {a20['min_dcf']:.4f} |" in report
    assert "Not calibrated" in report and "min t-DCF" in report


def test_one_rule_for_the_revised_tdcf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ASVspoof 2021 and 5 take the revised t-DCF, with ASV scores or without, in the report and in the check of
    --asv-scores before training; ASVspoof 2019 and the others the 2019 one."""
    assert [get_corpus(d).revised_tdcf for d in ("asvspoof2019-la", "asvspoof2021-df", "asvspoof5", "custom")] == \
        [False, True, True, False]  # fmt: skip
    asv = tmp_path / "asv.txt"
    asv.write_text("bonafide target 3.0\nbonafide target 2.0\nbonafide nontarget -2.0\nbonafide nontarget -3.0\n"
                   "A01 spoof -1.0\nA01 spoof 1.0\n")  # fmt: skip
    revised, tdcf = [], spoof_report.min_tdcf

    def noted(*args, **kwargs):
        revised.append(kwargs["revised"])
        return tdcf(*args, **kwargs)

    monkeypatch.setattr(spoof_report, "min_tdcf", noted)
    trials, scores = _asvspoof5_trials(40)
    for data in ("asvspoof5", "asvspoof2019-la"):
        for asv_scores in (str(asv), None):
            write_report(tmp_path / data, {"eval": (trials, scores)}, 7.0, asv_scores, data)
    assert revised == [True, True, False]  # asvspoof2019-la without ASV scores: no t-DCF
    monkeypatch.setattr("lcnn.tasks.spoof.data.min_tdcf", noted)
    with pytest.raises(DataError, match="no such data folder"):  # the check of the file passed, then no data
        SpoofDataModule("asvspoof5", str(tmp_path / "none"), asv_scores=str(asv)).setup()
    assert revised[-1] is True


def test_calibrated_report(tmp_path: Path) -> None:
    trials, scores = _asvspoof5_trials()
    bona = np.array([t.key == "bonafide" for t in trials])
    calibration = Calibration(0.7, -4.0)
    llrs = calibration.apply(scores)
    metrics = write_report(tmp_path, {"dev": (trials, scores), "eval": (trials, scores)}, 7.0, None, "custom",
                           calibration=calibration)  # fmt: skip
    for split in ("dev", "eval"):
        assert metrics[f"{split}_act_dcf"] == act_dcf(llrs[bona], llrs[~bona])
        assert metrics[f"{split}_act_dcf_raw"] == act_dcf(scores[bona], scores[~bona])
        assert metrics[f"{split}_cllr"] == cllr(llrs[bona], llrs[~bona])
        assert metrics[f"{split}_cllr_raw"] == cllr(scores[bona], scores[~bona])
        assert metrics[f"{split}_min_cllr"] == pytest.approx(min_cllr(scores[bona], scores[~bona]))
        written = read_scores(tmp_path / f"llrs-{split}.txt")
        assert written.ids == tuple(t.utt for t in trials) and np.allclose(written.scores, llrs, rtol=1e-8, atol=0)
    assert metrics["calibration"] == calibration.to_dict()
    row = metrics["tables"]["eval"]["conditions"]["codec"]["rows"]["C05"]
    sel = np.array([t.conditions["codec"] == "C05" for t in trials])
    assert row["act_dcf"] == act_dcf(llrs[bona & sel], llrs[~bona & sel])
    report = (tmp_path / "report.md").read_text()
    assert "Calibrated: llr = 0.7 * score - 4, fitted at Pspoof 0.05" in report
    before, after = metrics["eval_act_dcf_raw"], metrics["eval_act_dcf"]
    assert f"eval: act DCF {before:.4f} before calibration, {after:.4f} after" in report
    assert "| codec | bona fide | spoof | EER (%) | min DCF | act DCF | Cllr | min Cllr |" in report
    assert "## dev: per attack" in report and "## eval: per attack" in report


def test_the_check_runs_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trials, scores = _asvspoof5_trials(40)
    broken = scores.copy()
    broken[3] = np.nan
    with pytest.raises(DataError, match=r"scores-eval-2021.txt: 1 score is NaN or infinite, e.g. E_0000000003 nan "
                                        r"\(line 4\)"):
        write_report(tmp_path / "nan", {"eval": (trials, broken)}, 0.0, None, "custom")
    with pytest.raises(DataError, match=r"only two distinct scores, 0 and 1: these are decisions"):
        write_report(tmp_path / "binary", {"eval": (trials, (scores > 7).astype(float))}, 0.0, None, "custom")
    with caplog.at_level(logging.WARNING, logger="lcnn"):
        metrics = write_report(tmp_path / "inverted", {"eval": (trials, -scores)}, 0.0, None, "custom")
    assert metrics["warnings"] == [f"scores-eval-2021.txt: pooled EER {100 * metrics['eval_eer']:.1f} % is above 50 %: "
                                   "the scores look inverted; higher scores must mean bona fide (negate scores where "
                                   "yours mean spoof)"]  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == [f"{tmp_path / 'inverted'}/{metrics['warnings'][0]}"]  # once
    assert "**Warning**: scores-eval-2021.txt: pooled EER" in (tmp_path / "inverted" / "report.md").read_text()
    unlabelled = [Trial(t.utt) for t in trials]
    assert write_report(tmp_path / "list", {"eval": (unlabelled, scores)}, 0.0, None, "custom") == {
        "eval_count": 40, "eval_labelled": False}
    assert not (tmp_path / "list" / "report.md").exists()


def test_det_overlay(tmp_path: Path) -> None:
    trials, scores = _asvspoof5_trials(200)
    files = {}
    for name, noise in (("A", 0.0), ("B", 2.0), ("C", 4.0)):
        out = tmp_path / name
        write_report(out, {"eval": (trials, scores + np.random.default_rng(1).normal(0, noise, len(scores)))}, 0.0,
                     None, "custom")  # fmt: skip
        files[name] = out / "scores-eval.txt"
    path = write_det_overlay(files, tmp_path / "det.png", title="three systems")
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(DataError, match=r"scores-eval-2021.txt: no labels in this score file"):
        write_det_overlay({"A": tmp_path / "A" / "scores-eval-2021.txt"}, tmp_path / "x.png")
