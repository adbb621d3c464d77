"""Spoofed-speech detection on the corpora of :mod:`lcnn.data.corpora` (ASVspoof, In-the-Wild, FoR, MLAAD, MiniSpoof,
the user's own data).

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

from lcnn.data.corpora import corpora_help
from lcnn.tasks.base import Task, count, finite, fraction, option, positive

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
SCORE_BATCH = 32  # lcnn score: ~300 MB of lcnn_lstm activations on 3-s files (benchmarks/RESULTS-spoof.md)


def _devices(text: str) -> int | str:
    """``--devices``: a number of devices (at least 1), or what Lightning reads otherwise (``auto``, ``0,1``)."""
    try:
        int(text)
    except ValueError:
        return text
    return count(1)(text)


class SpoofTask(Task):
    """Bona fide vs spoof scoring of utterances with the LCNN or LCNN-LSTM."""

    name = "spoof"
    description = "spoofed-speech detection (ASVspoof): LCNN / LCNN-LSTM on LFCC or spectrogram features"
    monitor = ("val_eer", "min")
    default_data = "minispoof"
    data_help = corpora_help()
    #: ``baseline`` is the ASVspoof 2021 recipe; ``article`` (every task's default recipe name) is the same.
    recipes = {"baseline": _RECIPE, "article": _RECIPE}
    path_settings = ("data_dir", "cache_dir", "asv_scores", "protocol", "augment")
    path_prefixes = ("noise", "reverb")  # --augment noise:DIR, reverb:DIR
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
        option("--frontend", metavar="NAME",
               help="speech features: lfcc (the 2021 baseline's 60 LFCCs on 0-4 kHz), spec (log power spectrogram), "
                    "lfb (60 log linear filterbank energies), power (power spectrum, for --filterbank) "
                    "or ssl:NAME_OR_PATH (a wav2vec 2.0 / HuBERT / WavLM / XLS-R model, e.g. "
                    "ssl:facebook/wav2vec2-xls-r-300m; needs lcnn[ssl])"),
        option("--ssl-finetune", action="store_true", default=None,
               help="train the ssl: front-end's model with the back-end (default: frozen)"),
        option("--f-max", type=positive, metavar="HZ",
               help="upper band edge of the features (lfcc: 4000; spec: Nyquist)"),
        option("--n-fft", type=count(16), metavar="N",
               help="FFT size of the features (lfcc: 1024; NII's study: 512 with --f-max 8000 for its LFCCs)"),
        option("--trim-silence", action=argparse.BooleanOptionalAction,
               help="drop digital silence (exact zeros) at both ends of each file before the features"),
        option("--loss", choices=["sigmoid", "softmax", "ocsoftmax", "amsoftmax", "p2sgrad"],
               help="sigmoid (baseline), softmax, ocsoftmax, amsoftmax or p2sgrad (the heads of NII's LCNN study)"),
        option("--pooling", choices=["mean", "sum"], help="lcnn_lstm: pooling over time (mean: the baseline's; sum: "
               "NII's angular-margin systems)"),
        option("--hidden", type=count(2), metavar="N", help="lcnn_fixed: hidden layer width (160; NII: 512 for "
               "amsoftmax and ocsoftmax)"),
        option("--filterbank", type=count(1), metavar="N", help="a trainable filterbank of N filters as the model's "
               "first layer, on --frontend power (NII's spec2: 60)"),
        option("--embedding", type=count(1), metavar="N", help="embedding size of the angular heads (ocsoftmax: "
               "256, amsoftmax and p2sgrad: 64)"),
        option("--margin", type=float, help="amsoftmax margin (0.9; NII's LFB systems 0.35)"),
        option("--scale", type=positive, help="amsoftmax scale (20; NII's LFB systems 10)"),
        option("--frames", type=count(16), metavar="N",
               help="frames fed to fixed-size models (crop or repeat-pad; 750, 64 on minispoof)"),
        option("--augment", action="append", metavar="SPEC",
               help="augment the training split on the fly (repeatable): rawboost:ALGO (1-8), codec[:mp3,opus,...], "
                    "noise:DIR[@snr=LO,HI], reverb:DIR, speed[:0.9,1.0,1.1]; any item takes @p=P"),
        _asv, _protocol, _cache,
    )  # fmt: skip
    evaluate_options = (
        option("--split", choices=["dev", "eval"], help="which split to score (default eval)"),
        _protocol, _asv, _cache, _workers,
    )  # fmt: skip
    _segment = option("--segment", type=positive, metavar="SECONDS",
                      help="score windows of SECONDS (long recordings), each file's score their --aggregate "
                      "(default: each file whole)")
    _hop = option("--hop", type=positive, metavar="SECONDS", help="step between windows (default: --segment)")
    _aggregate = option("--aggregate", metavar="HOW", help="a file's score from its windows: mean (default), min "
                        "(the most spoof-like window: scores are higher for bona fide) or quantile:Q")
    predict_options = (
        option("--threshold", type=finite, help="decision threshold of the score (default: the dev EER one, or for a "
               "calibrated checkpoint the Bayes decision of the LLR at its operating point)"),
        option("--prior", type=fraction, metavar="P_SPOOF", help="calibrated checkpoints: the prior probability of a "
               "spoof for the posterior (default: the calibration's, 0.05); lines then read FILE score llr decision "
               "P(bonafide)"),
        _segment, _hop, _aggregate,
    )  # fmt: skip
    score_options = (
        option("--out", metavar="FILE", help="the score file (default scores.txt); beside it, while running, "
               "FILE.partial/, and at the end STEM.failed.tsv (files that could not be scored) and, with --segment, "
               "STEM.segments.tsv"),
        option("--audio-dir", metavar="DIR", help="the folder that the paths of a protocol, CSV or list are "
               "relative to (default: the INPUT's folder)"),
        option("--format", dest="form", choices=["2021", "2019"],
               help="2021: ID SCORE (default; the ASVspoof 2021 and 5 form), 2019: ID ATTACK KEY SCORE"),
        option("--batch-size", type=count(1), metavar="B", help=f"items per batch (default {SCORE_BATCH})"),
        option("--workers", type=count(0), metavar="N",
               help="DataLoader processes decoding and computing features (default: the CPU cores but one, at most "
               "4 when the model runs on the CPU, 16 on a GPU)"),
        _segment, _hop, _aggregate, _cache,
        option("--no-cache", action="store_true", default=None, help="compute every file's features, store none"),
        option("--strict", action="store_true", default=None,
               help="stop at the first file that cannot be scored (default: list it in STEM.failed.tsv, exit 1)"),
        option("--restart", action="store_true", default=None,
               help="discard the partial scores of an earlier run into the same --out instead of resuming it"),
        option("--accelerator", help="cpu, gpu, mps or auto (default)"),
        option("--devices", type=_devices, help="devices (processes) per node (default 1); more: DDP"),
        option("--num-nodes", type=count(1), metavar="M",
               help="nodes (default 1), launched by torchrun or the cluster"),
        option("--strategy", help="Lightning strategy (default auto; ddp with several devices)"),
        option("--precision", help="32-true (the scores of evaluate), bf16-mixed (faster on CPUs with AVX512_BF16 "
               "or AMX and on bf16 GPUs; scores move by ~1e-2 of their spread) or 16-mixed (GPUs); default: the "
               "precision probe's inference choice, 32-true while no spoof model is known to keep its scores in bf16"),
    )  # fmt: skip

    def resolve(self, data: str | None = None, recipe: str = "article", **overrides: Any) -> dict[str, Any]:
        """As :meth:`Task.resolve`, but a front-end setting of the recipe that the chosen front-end does not have
        (the MiniSpoof recipe's ``f_max`` under ``--frontend ssl:...``) goes back to its default; given
        explicitly, it is refused as before."""
        from lcnn.audio.pipeline import FRONTENDS

        cfg = super().resolve(data, recipe, **overrides)
        settings = FRONTENDS.get(str(cfg["frontend"]).partition(":")[0], {})
        for key in ("f_max", "n_fft", "trim_silence"):
            if overrides.get(key) is None and key not in settings:
                cfg[key] = None
        return cfg

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

        from lcnn.data.asvspoof import SPLITS, load_split, resolve_sources
        from lcnn.errors import DataError, UserError
        from lcnn.io import write_json
        from lcnn.precision import LIGHTNING, evaluate_precision
        from lcnn.score import TrialTable, score_trials
        from lcnn.tasks.spoof.data import cache_root, parse_protocols
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
        table = TrialTable.from_trials(trials, f"{data} {split}")
        missing = table.missing
        if len(missing):
            raise DataError(f"{split}: {len(missing)} of {len(trials)} trials have no audio file, e.g. "
                            + ", ".join(table.path(i) for i in missing[:3]))  # fmt: skip
        hp, out_dir = module.hparams, Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # The outputs are evaluate's own: partial scores of a killed evaluate are discarded, never resumed
        # (its settings may have been other ones, and evaluate takes no --restart).
        summary = score_trials(module, table, out_dir / f"scores-{split}-2021.txt", frontend=hp.frontend,
                               frames=hp.frames, batch_size=cfg.get("batch_size", 64) if batch_size is None else
                               batch_size, workers=num_workers or 0, restart=True,
                               cache_dir=cache_root(cache_dir or cfg.get("cache_dir"), hp.frontend),
                               precision=LIGHTNING[evaluate_precision()])  # fmt: skip
        kept = ~np.isnan(summary.scores)  # the exact scores, as training's test reports them
        threshold = float(module.threshold)
        asv = asv_scores or (cfg.get("asv_scores") if same else None)
        results = {split: ([t for t, k in zip(trials, kept) if k], summary.scores[kept])}
        metrics = write_report(out_dir, results, threshold, asv, data, main=split,
                               calibration=getattr(module, "calibration", None), wrote_2021=True)
        metrics.update(data=data, split=split, threshold=threshold, failed=summary.failed)
        if summary.failed_file:
            metrics["failed_file"] = str(summary.failed_file)
        write_json(out_dir / "metrics.json", metrics)
        return metrics

    def predict(self, module: Any, cfg: dict[str, Any], files: list[Path], threshold: float | None = None,
                batch_size: int | None = None, prior: float | None = None, segment: float | None = None,
                hop: float | None = None, aggregate: str | None = None) -> list[str]:  # fmt: skip
        """``FILE<TAB>score<TAB>bonafide|spoof`` per file, deciding at the dev threshold stored in the checkpoint
        (``threshold`` overrides it; ``-`` when there is none).

        Each file is scored whole, as ``lcnn score`` and ``lcnn evaluate`` score it (the same engine, the same
        score); with ``segment`` in windows of ``segment`` seconds every ``hop`` (default: ``segment``), its score
        their ``aggregate``, as ``lcnn score --segment`` (:mod:`lcnn.score.segments`), with a fourth field for a
        file of several windows: the lowest-scoring (most spoof-like) one, ``lowest START-END s: SCORE``.
        A calibrated checkpoint (or ``prior``) gives
        ``FILE<TAB>score<TAB>llr<TAB>decision<TAB>posterior`` instead
        (:func:`~lcnn.tasks.spoof.calibrate.calibrated_lines`). Every refusal comes before any scoring.
        """
        import math
        import tempfile

        import numpy as np

        from lcnn.errors import DataError
        from lcnn.score import TrialTable, score_trials
        from lcnn.score.segments import parse_aggregate
        from lcnn.tasks.spoof.calibrate import calibrated_lines, prior_of

        calibration = getattr(module, "calibration", None)
        if prior is not None:
            prior_of(calibration, prior)
        table = TrialTable("", "the files given")
        for k, file in enumerate(files):
            if not Path(file).is_file():
                raise DataError(f"{file}: no such audio file")
            table.add(str(k), str(file))  # the ids of a temporary score file: any path may be given, twice
        parse_aggregate(aggregate or "mean")  # refused before any scoring
        hp = module.hparams
        with tempfile.TemporaryDirectory() as tmp:
            summary = score_trials(module, table.check(), Path(tmp) / "scores.txt", frontend=hp.frontend,
                                   frames=hp.frames, batch_size=64 if batch_size is None else batch_size,
                                   segment=segment, hop=hop, aggregate=aggregate or "mean", strict=True,
                                   progress=False, precision=_inference_precision(module))  # fmt: skip
        scores, windows, window_scores = summary.scores, summary.windows, summary.window_scores
        if calibration is not None or prior is not None:
            return calibrated_lines(files, scores, calibration, prior, threshold)
        threshold = float(module.threshold) if threshold is None else float(threshold)
        decide = (lambda s: "-") if math.isnan(threshold) else (lambda s: "bonafide" if s >= threshold else "spoof")
        lines = []
        for i, (file, score) in enumerate(zip(files, scores)):
            line = f"{file}\t{score:.6f}\t{decide(score)}"
            first, last = (int(windows.first[i]), int(windows.first[i + 1])) if windows is not None else (0, 0)
            if last - first > 1:
                low = first + int(np.argmin(window_scores[first:last]))
                start, end = windows.span(low)
                line += f"\tlowest {start:.2f}-{end:.2f} s: {window_scores[low]:.6f}"
            lines.append(line)
        return lines

    def score(self, module: Any, cfg: dict[str, Any], input: str, out: str | None = None, audio_dir: str | None = None,
              form: str | None = None, batch_size: int | None = None, workers: int | None = None,
              segment: float | None = None, hop: float | None = None, aggregate: str | None = None,
              cache_dir: str | None = None, no_cache: bool | None = None, strict: bool | None = None,
              restart: bool | None = None, accelerator: str | None = None, devices: int | str | None = None,
              num_nodes: int | None = None, strategy: str | None = None, precision: str | None = None) -> Any:
        """``lcnn score``: every trial of ``input`` (a protocol, CSV, list of paths or folder:
        :func:`lcnn.score.read_input`) scored into ``out`` by :func:`lcnn.score.score_trials` (the options of
        :attr:`score_options`; ``None``: the default, never a 0 read as one). Returns its Summary on process 0,
        ``None`` on the others."""
        from lcnn.score import read_input, score_trials
        from lcnn.tasks.spoof.data import cache_root

        if workers is None:  # the features cost ~1/25 of lcnn_lstm on a CPU core, ~all of it beside a GPU
            workers = min(16 if _on_gpu(accelerator) else 4, max(0, (os.cpu_count() or 1) - 1))
        hp = module.hparams
        return score_trials(module, read_input(input, audio_dir), out or "scores.txt", frontend=hp.frontend,
                            frames=hp.frames, batch_size=SCORE_BATCH if batch_size is None else batch_size,
                            workers=workers,
                            cache_dir=None if no_cache else cache_root(cache_dir or cfg.get("cache_dir"), hp.frontend),
                            segment=segment, hop=hop, aggregate=aggregate or "mean", form=form or "2021",
                            strict=bool(strict), restart=bool(restart), accelerator=accelerator or "auto",
                            devices=1 if devices is None else devices, num_nodes=1 if num_nodes is None else num_nodes,
                            strategy=strategy or "auto",
                            precision=precision or _inference_precision(module, accelerator))  # fmt: skip

    def example_input(self, module: Any) -> Any:
        """A batch for export: ``(1, 1, frames, n_features)``, 400 frames (4 s) for variable-length models."""
        import torch

        return torch.zeros(1, 1, module.hparams.frames or 400, module.hparams.n_features)


def _inference_precision(module: Any, accelerator: str | None = None) -> str:
    """The Trainer precision predict and score run the module in without ``--precision``: the policy's
    inference path (:func:`lcnn.precision.infer_precision`) among those the scoring engine runs (fp32, bf16)."""
    from lcnn.precision import LIGHTNING, infer_precision

    shape = getattr(module.model, "input_shape", None)
    return LIGHTNING[infer_precision(SpoofTask.name, module.hparams.model, shape, accelerator, runs=("fp32", "bf16"))]


def _on_gpu(accelerator: str | None) -> bool:
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator in (None, "auto") and torch.cuda.is_available())
