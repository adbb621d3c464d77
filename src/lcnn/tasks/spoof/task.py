"""Spoofed-speech detection on the corpora of :mod:`lcnn.data.corpora` (ASVspoof, In-the-Wild, FoR, MLAAD, MiniSpoof,
the user's own data).

Pipeline: audio -> front-end features (cached on disk, :mod:`lcnn.data.features`) -> a 1-channel image
``(N, 1, frames, features)`` (time along H, features along W, as the ASVspoof 2021 baseline) -> ``lcnn`` on
a fixed number of frames (crop / repeat-pad) or ``lcnn_lstm`` on the whole utterance -> one score per trial,
higher = more bona fide; the decision threshold is the dev EER threshold of the kept checkpoint.
"""

from __future__ import annotations

import inspect
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lcnn.audio.pipeline import FRONTENDS
from lcnn.data.asvspoof import SPLITS, load_split, resolve_sources
from lcnn.errors import DataError, UserError
from lcnn.inference import int8_dynamic_unavailable, quantize_int8_dynamic
from lcnn.io import write_json
from lcnn.models import model_info
from lcnn.precision import LIGHTNING, evaluate_precision, infer_precision
from lcnn.score import TrialTable, read_input, score_trials
from lcnn.score.engine import INT8
from lcnn.score.segments import parse_aggregate
from lcnn.speed import cpu_cores
from lcnn.tasks.spoof.calibrate import calibrated_lines, prior_of, read_calibration
from lcnn.tasks.spoof.data import cache_root, parse_protocols
from lcnn.tasks.spoof.report import write_report
from lcnn.tasks.spoof.spec import SCORE_BATCH, SpoofSpec


class SpoofTask(SpoofSpec):
    """Bona fide vs spoof scoring of utterances with the LCNN or LCNN-LSTM."""

    def restore_extras(self, module: Any, ckpt: dict[str, Any], where: str) -> None:
        """A checkpoint's calibration (``lcnn calibrate --checkpoint``) becomes ``module.calibration``, which maps
        its scores to LLRs; ``None`` without one."""
        module.calibration = read_calibration(ckpt, where)

    def resolve(self, data: str | None = None, recipe: str = "article", **overrides: Any) -> dict[str, Any]:
        """As :meth:`Task.resolve`, but a front-end setting of the recipe that the chosen front-end does not have
        (the MiniSpoof recipe's ``f_max`` under ``--frontend ssl:...``) goes back to its default; given
        explicitly, it is refused as before."""
        cfg = super().resolve(data, recipe, **overrides)
        settings = FRONTENDS.get(str(cfg["frontend"]).partition(":")[0], {})
        for key in ("f_max", "n_fft", "trim_silence"):
            if overrides.get(key) is None and key not in settings:
                cfg[key] = None
        return cfg

    def data_settings(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Whole utterances (no fixed frame count) for variable-length models."""
        return {"frames": None if model_info(cfg["model"], task=self.name).variable_length else cfg["frames"]}

    def module_settings(self, cfg: dict[str, Any], datamodule: Any) -> dict[str, Any]:
        """The data's features; a back-end with its own window (``lcnn_fixed``) takes ``--frames`` as its size."""
        windowed = "window" in inspect.signature(model_info(cfg["model"], task=self.name).build).parameters
        return {"n_features": datamodule.n_features, "frames": datamodule.frames,
                "frontend": datamodule.frontend_config, "window": cfg["frames"] if windowed else None}  # fmt: skip

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
                hop: float | None = None, aggregate: str | None = None,
                int8: bool | None = None) -> list[str]:  # fmt: skip
        """``FILE<TAB>score<TAB>bonafide|spoof`` per file, deciding at the dev threshold stored in the checkpoint
        (``threshold`` overrides it; ``-`` when there is none).

        Each file is scored whole, as ``lcnn score`` and ``lcnn evaluate`` score it (the same engine, the same
        score); with ``segment`` in windows of ``segment`` seconds every ``hop`` (default: ``segment``), its score
        their ``aggregate``, as ``lcnn score --segment`` (:mod:`lcnn.score.segments`), with a fourth field for a
        file of several windows: the lowest-scoring (most spoof-like) one, ``lowest START-END s: SCORE``.
        A calibrated checkpoint (or ``prior``) gives
        ``FILE<TAB>score<TAB>llr<TAB>decision<TAB>posterior`` instead
        (:func:`~lcnn.tasks.spoof.calibrate.calibrated_lines`). ``int8``: the model in int8 (:func:`to_int8`), as
        ``lcnn score --precision int8``; ``False``: fp32; ``None``: the policy's inference path. Every refusal
        comes before any scoring.
        """

        calibration = getattr(module, "calibration", None)
        if prior is not None:
            prior_of(calibration, prior)
        table = TrialTable("", "the files given")
        for k, file in enumerate(files):
            if not Path(file).is_file():
                raise DataError(f"{file}: no such audio file")
            table.add(str(k), str(file))  # the ids of a temporary score file: any path may be given, twice
        parse_aggregate(aggregate or "mean")  # refused before any scoring
        precision = INT8 if int8 else "32-true" if int8 is False else _inference_precision(module)
        if precision == INT8:
            to_int8(module)
        hp = module.hparams
        with tempfile.TemporaryDirectory() as tmp:
            summary = score_trials(module, table.check(), Path(tmp) / "scores.txt", frontend=hp.frontend,
                                   frames=hp.frames, batch_size=64 if batch_size is None else batch_size,
                                   segment=segment, hop=hop, aggregate=aggregate or "mean", strict=True,
                                   progress=False, precision=precision)  # fmt: skip
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
              form: str | None = None, batch_size: int | None = None, num_workers: int | None = None,
              segment: float | None = None, hop: float | None = None, aggregate: str | None = None,
              cache_dir: str | None = None, no_cache: bool | None = None, strict: bool | None = None,
              restart: bool | None = None, accelerator: str | None = None, devices: int | str | None = None,
              num_nodes: int | None = None, strategy: str | None = None, precision: str | None = None) -> Any:
        """``lcnn score``: every trial of ``input`` (a protocol, CSV, list of paths or folder:
        :func:`lcnn.score.read_input`) scored into ``out`` by :func:`lcnn.score.score_trials` (the options of
        :attr:`score_options`; ``None``: the default, never a 0 read as one; ``precision="int8"``: the model in
        int8, :func:`to_int8`). Returns its Summary on process 0, ``None`` on the others."""
        if num_workers is None:  # on a CPU each worker decodes, computes features and scores (score_trials)
            num_workers = min(16, max(0, cpu_cores() - 1)) if _on_gpu(accelerator) else cpu_cores()
        if precision in (None, "auto"):
            precision = _inference_precision(module, accelerator)
        if precision == INT8:
            to_int8(module)
        hp = module.hparams
        return score_trials(module, read_input(input, audio_dir), out or "scores.txt", frontend=hp.frontend,
                            frames=hp.frames, batch_size=SCORE_BATCH if batch_size is None else batch_size,
                            workers=num_workers,
                            cache_dir=None if no_cache else cache_root(cache_dir or cfg.get("cache_dir"), hp.frontend),
                            segment=segment, hop=hop, aggregate=aggregate or "mean", form=form or "2021",
                            strict=bool(strict), restart=bool(restart), accelerator=accelerator or "auto",
                            devices=1 if devices is None else devices, num_nodes=1 if num_nodes is None else num_nodes,
                            strategy=strategy or "auto", precision=precision)  # fmt: skip

    def example_input(self, module: Any) -> Any:
        """A batch for export: ``(1, 1, frames, n_features)``, 400 frames (4 s) for variable-length models."""
        return torch.zeros(1, 1, module.hparams.frames or 400, module.hparams.n_features)


def to_int8(module: Any) -> None:
    """The module's model made int8 in place (:func:`lcnn.inference.quantize_int8_dynamic`: each utterance
    quantized with its own ranges, so that its score depends on its file only, as in fp32); a UserError where
    this machine has no int8 kernels. An SSL front-end stays as it is."""
    why = int8_dynamic_unavailable()
    if why:
        raise UserError(f"--precision int8: {why}")
    module.model = quantize_int8_dynamic(module.model)


def _inference_precision(module: Any, accelerator: str | None = None) -> str:
    """The precision predict and score run the module in without ``--precision``: the policy's inference path
    (:func:`lcnn.precision.infer_precision`) as the scoring engine takes it (Lightning's name, or ``int8``)."""
    shape = getattr(module.model, "input_shape", None)
    path = infer_precision(SpoofTask.name, module.hparams.model, shape, accelerator)
    return INT8 if path == "int8" else LIGHTNING[path]


def _on_gpu(accelerator: str | None) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator in (None, "auto") and torch.cuda.is_available())
