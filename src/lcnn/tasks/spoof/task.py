"""Spoofed-speech detection (ASVspoof 2019 LA / PA, ASVspoof 2021 LA / DF, MiniSpoof, the user's own data).

Pipeline: audio -> front-end features (cached on disk, :mod:`lcnn.data.features`) -> a 1-channel image
``(N, 1, frames, features)`` (time along H, features along W, as the ASVspoof 2021 baseline) -> ``lcnn`` on
a fixed number of frames (crop / repeat-pad) or ``lcnn_lstm`` on the whole utterance -> one score per trial,
higher = more bona fide; the decision threshold is the dev EER threshold of the kept checkpoint.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from lcnn.tasks.base import Task, count, option, positive

# The ASVspoof 2021 LFCC-LCNN baseline (NII), the defaults of the module and data signatures: lcnn_lstm on 60
# LFCCs, Adam 3e-4 halved every 10 epochs, batches of 64 grouped by length; 100 epochs, stopping after 50
# without improvement (here on the dev EER; the baseline watches the dev loss).
_BASELINE: dict[str, Any] = {"epochs": 100, "patience": 50}
# MiniSpoof: ~0.5 s utterances (median 50 frames) with 4 kHz content and 0-150 ms of digital silence at
# each end. The log spectrogram cut at 4 kHz (128 bins) after trimming the silence learns where the
# baseline's LFCCs do not (benchmarks/RESULTS-spoof.md). lcnn sees 64 frames. A 3,000-file train split whose
# best dev EER comes after ~10-17 epochs: at most 20 epochs.
_MINISPOOF = {"frontend": "spec", "f_max": 4000.0, "trim_silence": True, "frames": 64, "epochs": 20, "patience": 8}
_RECIPE = {"default": _BASELINE, "minispoof": _MINISPOOF}


class SpoofTask(Task):
    """Bona fide vs spoof scoring of utterances with the LCNN or LCNN-LSTM."""

    name = "spoof"
    description = "spoofed-speech detection (ASVspoof): LCNN / LCNN-LSTM on LFCC or spectrogram features"
    monitor = ("val_eer", "min")
    default_data = "minispoof"
    data_help = ("minispoof (default; --data-dir or $LCNN_MINISPOOF), asvspoof2019-la, asvspoof2019-pa, "
                 "asvspoof2021-la, asvspoof2021-df, asvspoof5, in-the-wild (evaluation only), "
                 "custom (with --protocol)")  # fmt: skip
    #: ``baseline`` is the ASVspoof 2021 recipe; ``article`` (every task's default recipe name) is the same.
    recipes = {"baseline": _RECIPE, "article": _RECIPE}
    path_settings = ("data_dir", "cache_dir", "asv_scores", "protocol")
    module = "lcnn.tasks.spoof.module:SpoofModule"
    datamodule = "lcnn.tasks.spoof.data:SpoofDataModule"
    module_from_data = ("n_features", "frames", "frontend")

    _protocol = option("--protocol", action="append", metavar="SPLIT=FILE",
                       help="protocol or CSV (path,label[,speaker,attack]) of a split, paths relative to --data-dir; "
                            "evaluate: a bare FILE is the protocol of --split")  # fmt: skip
    _cache = option("--cache-dir", metavar="DIR",
                    help="feature cache (default: $LCNN_CACHE/features or ~/.cache/lcnn/features)")
    _asv = option("--asv-scores", metavar="FILE", help="ASVspoof ASV score file of the eval split, for the min t-DCF")
    _workers = option("--num-workers", type=count(0), metavar="N", help="data-loading worker processes (default 0)")
    train_options = (
        option("--frontend", choices=["lfcc", "spec"],
               help="speech features: lfcc (the 2021 baseline's 60 LFCCs on 0-4 kHz) or spec (log power spectrogram)"),
        option("--f-max", type=positive, metavar="HZ",
               help="upper band edge of the features (lfcc: 4000; spec: Nyquist)"),
        option("--trim-silence", action=argparse.BooleanOptionalAction,
               help="drop digital silence (exact zeros) at both ends of each file before the features"),
        option("--loss", choices=["sigmoid", "softmax", "ocsoftmax"], help="sigmoid (baseline), softmax or ocsoftmax"),
        option("--frames", type=count(16), metavar="N",
               help="frames fed to fixed-size models (crop or repeat-pad; 750, 64 on minispoof)"),
        _asv, _protocol, _cache,
    )  # fmt: skip
    evaluate_options = (
        option("--split", choices=["dev", "eval"], help="which split to score (default eval)"),
        _protocol, _asv, _cache, _workers,
    )  # fmt: skip
    predict_options = (
        option("--threshold", type=float, help="decision threshold of the score (default: the dev EER one, or for a "
               "calibrated checkpoint the Bayes decision of the LLR at its operating point)"),
        option("--prior", type=float, metavar="P_SPOOF", help="calibrated checkpoints: the prior probability of a "
               "spoof for the posterior (default: the calibration's, 0.05); lines then read FILE score llr decision "
               "P(bonafide)"),
    )  # fmt: skip

    def data_settings(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Whole utterances (no fixed frame count) for variable-length models."""
        from lcnn.models import model_info

        return {"frames": None if model_info(cfg["model"], task=self.name).variable_length else cfg["frames"]}

    def module_settings(self, cfg: dict[str, Any], datamodule: Any) -> dict[str, Any]:
        return {"n_features": datamodule.n_features, "frames": datamodule.frames,
                "frontend": datamodule.frontend_config}  # fmt: skip

    def test(self, trainer: Any, module: Any, datamodule: Any, run_dir: Path) -> dict[str, Any]:
        """Score dev and eval with the best checkpoint, at its dev EER threshold.

        Writes into ``run_dir``: ``scores-{dev,eval}.txt`` (2019 format) and ``-2021.txt``, ``eer-*.txt``,
        ``eer_tables.json`` and ``det.png``. Returns dev_eer, threshold, eval_eer, eval_min_tdcf (``None``
        without ASV scores, with ``min_tdcf_note``), eval_frr / eval_far at the threshold and ``eer_<attack>``.
        """
        trainer.test(module, datamodule, ckpt_path="best", verbose=False)
        if not trainer.is_global_zero:
            return {}
        results = {split: (datamodule.splits[split].trials, module.test_scores[i])
                   for i, split in enumerate(datamodule.test_splits)}  # fmt: skip
        threshold = float(module.threshold)
        from lcnn.tasks.spoof.report import write_report

        report = write_report(Path(run_dir), results, threshold, datamodule.asv_scores, datamodule.data)
        return {"threshold": threshold, **report}

    def evaluate(self, module: Any, cfg: dict[str, Any], out_dir: Path, data: str | None = None,
                 data_dir: str | None = None, split: str | None = None, protocol: Any = None,
                 asv_scores: str | None = None, cache_dir: str | None = None, batch_size: int | None = None,
                 num_workers: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Score one split (default eval) of the run's data, or of ``data``, and write its reports.

        ``protocol``: a FILE for the split scored, or ``SPLIT=FILE`` items. Refuses to score when a trial has
        no audio, or when a trial list and its keys disagree.
        """
        import numpy as np

        from lcnn.data.asvspoof import SPLITS, check_audio, load_split, resolve_sources
        from lcnn.data.speech import SpoofDataset
        from lcnn.errors import UserError
        from lcnn.io import write_json
        from lcnn.tasks.common import inference_trainer
        from lcnn.tasks.spoof.data import feature_cache, parse_protocols, scoring_loader
        from lcnn.tasks.spoof.report import write_report

        data = data or cfg.get("data", self.default_data)
        same = data == cfg.get("data")
        data_dir = data_dir or (cfg.get("data_dir") if same else None)
        split = split or "eval"
        if isinstance(protocol, (str, os.PathLike)) and str(protocol).partition("=")[0] not in SPLITS:
            protocol = {split: str(protocol)}  # a bare FILE: the protocol of the split scored
        if isinstance(protocol, list) and len(protocol) == 1 and str(protocol[0]).partition("=")[0] not in SPLITS:
            protocol = {split: str(protocol[0])}
        sources = resolve_sources(data, data_dir, parse_protocols(protocol or (cfg.get("protocol") if same else None)))
        if split not in sources:
            raise UserError(f"{data}: no {split} split (give --protocol {split}=FILE)")
        trials = load_split(sources[split])
        sizes = check_audio(trials, split)
        hp = module.hparams
        ds = SpoofDataset(trials, feature_cache(hp.frontend, cache_dir or cfg.get("cache_dir")), hp.frames, sizes=sizes)
        loader = scoring_loader(ds, batch_size or cfg.get("batch_size", 64), num_workers or 0)
        scores = np.empty(len(ds), dtype=np.float64)
        for batch_scores, index in inference_trainer(progress=True).predict(module, loader):
            scores[index.numpy()] = batch_scores.double().numpy()
        threshold = float(module.threshold)
        asv = asv_scores or (cfg.get("asv_scores") if same else None)
        out_dir = Path(out_dir)
        metrics = write_report(out_dir, {split: (trials, scores)}, threshold, asv, data, main=split,
                               calibration=getattr(module, "calibration", None))
        metrics.update(data=data, split=split, threshold=threshold)
        write_json(out_dir / "metrics.json", metrics)
        return metrics

    def predict(self, module: Any, cfg: dict[str, Any], files: list[Path], threshold: float | None = None,
                batch_size: int | None = None, prior: float | None = None) -> list[str]:  # fmt: skip
        """``FILE<TAB>score<TAB>bonafide|spoof`` per file, deciding at the dev threshold stored in the checkpoint
        (``threshold`` overrides it; ``-`` when there is none). A calibrated checkpoint gives
        ``FILE<TAB>score<TAB>llr<TAB>decision<TAB>posterior`` (:func:`~lcnn.tasks.spoof.calibrate.calibrated_lines`)."""
        import math

        import numpy as np

        from lcnn.data.features import FeatureCache
        from lcnn.data.protocols import Trial
        from lcnn.data.speech import SpoofDataset
        from lcnn.errors import DataError
        from lcnn.tasks.common import inference_choice, inference_trainer
        from lcnn.tasks.spoof.data import scoring_loader

        for file in files:
            if not Path(file).is_file():
                raise DataError(f"{file}: no such audio file")
        trials = [Trial(str(file), path=Path(file)) for file in files]
        ds = SpoofDataset(trials, FeatureCache(module.hparams.frontend), module.hparams.frames,
                          sizes=[os.stat(f).st_size for f in files])  # fmt: skip
        scores = np.empty(len(ds), dtype=np.float64)
        trainer = inference_trainer(precision=inference_choice(self.name, module))
        for batch_scores, index in trainer.predict(module, scoring_loader(ds, batch_size or 64)):
            scores[index.numpy()] = batch_scores.double().numpy()
        if getattr(module, "calibration", None) is not None or prior is not None:
            from lcnn.tasks.spoof.calibrate import calibrated_lines

            return calibrated_lines(files, scores, getattr(module, "calibration", None), prior, threshold)
        threshold = float(module.threshold) if threshold is None else float(threshold)
        decide = (lambda s: "-") if math.isnan(threshold) else (lambda s: "bonafide" if s >= threshold else "spoof")
        return [f"{file}\t{score:.6f}\t{decide(score)}" for file, score in zip(files, scores)]

    def example_input(self, module: Any) -> Any:
        """A batch for export: ``(1, 1, frames, n_features)``, 400 frames (4 s) for variable-length models."""
        import torch

        return torch.zeros(1, 1, module.hparams.frames or 400, module.hparams.n_features)
