"""Fixtures of the scoring tests (test_score, test_reliability), shared through conftest: a small corpus in the
2019 LA layout and an untrained lcnn_lstm spoof checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lcnn.audio import frontend_config
from lcnn.tasks.spoof.module import SpoofModule

RATE = 16000


def write_noise(path: Path, seconds: float, seed: int, rate: int = RATE, amplitude: float = 0.1) -> Path:
    """A file of white noise (PCM 16), its folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = amplitude * np.random.default_rng(seed).standard_normal(int(seconds * rate))
    sf.write(path, x, rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """13 trials of 0.2-0.5 s in the 2019 LA layout: ``flac/`` and ``protocol.txt``."""
    root = tmp_path_factory.mktemp("corpus")
    lines = []
    for i in range(13):
        utt = f"LA_E_{1000000 + i}"
        write_noise(root / "flac" / f"{utt}.flac", 0.2 + 0.025 * (i % 7), seed=i)
        lines.append(f"LA_000{i % 3} {utt} - {'-' if i % 2 else 'A01'} {'bonafide' if i % 2 else 'spoof'}\n")
    (root / "protocol.txt").write_text("".join(lines))
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An lcnn_lstm spoof checkpoint on LFCC (untrained: the scores are fixed, not meaningful)."""
    torch.manual_seed(0)
    module = SpoofModule(n_features=60, frontend=frontend_config("lfcc"))
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    torch.save({"lcnn_task": "spoof", "hyper_parameters": dict(module.hparams), "lcnn_config": {"task": "spoof"},
                "state_dict": module.state_dict()}, path)  # fmt: skip
    return path


