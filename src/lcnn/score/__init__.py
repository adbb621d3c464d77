"""The scoring engine: corpus-scale trial lists and long recordings through a trained spoofing model.

:func:`read_input` parses and checks a protocol, CSV, list of paths or folder in bounded memory
(:mod:`lcnn.score.trials`); :func:`score_trials` scores it with Lightning's ``trainer.predict`` on one or many
devices and nodes, streaming the scores to disk (resumable after a kill), with faulty files listed rather than
fatal, and optionally in sliding windows aggregated per file (:mod:`lcnn.score.segments`). ``lcnn score``,
``lcnn evaluate`` and ``lcnn predict`` of spoof checkpoints run through it. :func:`score_waveforms` scores
decoded waveforms in memory by the same steps (``lcnn serve``, the Python API; :mod:`lcnn.score.waves`).
"""

from lcnn.score.engine import FORMATS, Summary, module_digest, read_scores_in_order, score_trials
from lcnn.score.segments import Windows, parse_aggregate
from lcnn.score.trials import TrialTable, read_input
from lcnn.score.waves import WaveScores, score_waveforms

__all__ = ["FORMATS", "Summary", "TrialTable", "WaveScores", "Windows", "module_digest", "parse_aggregate",
           "read_input", "read_scores_in_order", "score_trials", "score_waveforms"]
