"""What the spoof task declares (light: the parser reads it without torch): recipes, options, the import paths
of its LightningModule and DataModule; :class:`lcnn.tasks.spoof.task.SpoofTask` runs it."""

from __future__ import annotations

import argparse
from typing import Any

from lcnn.data.corpora import corpora_help
from lcnn.tasks.base import NUM_WORKERS, RUN_OPTIONS, Task, count, finite, fraction, option, positive

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


class SpoofSpec(Task):
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
    module_from_data = ("n_features", "frames", "frontend", "window")

    _protocol = option("--protocol", action="append", metavar="SPLIT=FILE",
                       help="protocol or CSV (path,label[,speaker,attack]) of a split, paths relative to --data-dir; "
                            "evaluate: a bare FILE is the protocol of --split")  # fmt: skip
    _cache = option("--cache-dir", metavar="DIR",
                    help="feature cache (default: $LCNN_CACHE/features or ~/.cache/lcnn/features)")
    _asv = option("--asv-scores", metavar="FILE", help="ASVspoof ASV score file of the eval split, for the min t-DCF")
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
        _protocol, _asv, _cache, NUM_WORKERS,
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
        option("--int8", action=argparse.BooleanOptionalAction,
               help="run the model in int8 on the CPU (x86), each file quantized with its own ranges, as `lcnn score "
                    "--precision int8`; --no-int8: fp32 (default: fp32, or bf16 where the precision policy picks it)"),
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
        option("--num-workers", type=count(0), metavar="N",
               help="DataLoader processes decoding and computing features (default: the CPU cores but one, at most "
               "4 when the model runs on the CPU, 16 on a GPU)"),
        _segment, _hop, _aggregate, _cache,
        option("--no-cache", action="store_true", default=None, help="compute every file's features, store none"),
        option("--strict", action="store_true", default=None,
               help="stop at the first file that cannot be scored (default: list it in STEM.failed.tsv, exit 1)"),
        option("--restart", action="store_true", default=None,
               help="discard the partial scores of an earlier run into the same --out instead of resuming it"),
        *RUN_OPTIONS,
        option("--num-nodes", type=count(1), metavar="M",
               help="nodes (default 1), launched by torchrun or the cluster"),
    )  # fmt: skip
    implementation = "lcnn.tasks.spoof.task:SpoofTask"
