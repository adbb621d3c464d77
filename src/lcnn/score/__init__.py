"""Scores: the files and the engine that writes them.

Score files (:mod:`lcnn.score.files`): :func:`read_scores` in every common form, :func:`check_scores` against a
key, :func:`write_score_file`, the one writer. The scoring engine: :func:`read_input` parses and checks a
protocol, CSV, list of paths or folder in bounded memory (:mod:`lcnn.score.trials`); :func:`score_trials` scores
it with Lightning's ``trainer.predict`` on one or many devices and nodes, streaming the scores to disk (resumable
after a kill), with faulty files listed rather than fatal, and optionally in sliding windows aggregated per file
(:mod:`lcnn.score.segments`). ``lcnn score``, ``lcnn evaluate`` and ``lcnn predict`` of spoof checkpoints run
through it. :func:`score_waveforms` scores decoded waveforms in memory by the same steps (``lcnn serve``, the
Python API; :mod:`lcnn.score.waves`).

The engine's names (torch, Lightning) are imported on first use, so that the score-file commands
(``check-scores``, ``calibrate``, ``fuse``) start without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from lcnn.score.files import (
    SCORE_FORMAT,
    ScoreCheck,
    ScoreFile,
    aligned,
    check_scores,
    load_scores,
    read_scores,
    write_score_file,
)

# The engine's names load torch and Lightning: imported on first use.
_LAZY = {"FORMATS": "engine", "Summary": "engine", "module_digest": "engine", "score_trials": "engine",
         "Windows": "segments", "parse_aggregate": "segments", "TrialTable": "trials", "read_input": "trials",
         "WaveScores": "waves", "score_waveforms": "waves"}

__all__ = ["SCORE_FORMAT", "ScoreCheck", "ScoreFile", "aligned", "check_scores", "load_scores", "read_scores",
           "write_score_file", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # a function-level import: the engine loads torch
        return getattr(importlib.import_module(f"lcnn.score.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lcnn.score' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
