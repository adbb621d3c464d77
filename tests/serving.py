"""Helpers of the ``lcnn serve`` tests: tiny untrained checkpoints of each task in the format training
writes (the keys ``load_task`` reads), and generated audio and images as upload bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from lcnn.audio import build_frontend, frontend_config
from lcnn.metrics import Calibration
from lcnn.tasks.classify.module import ClassificationModule
from lcnn.tasks.face.module import FaceModule
from lcnn.tasks.spoof.module import SpoofModule

#: The calibration stored in the fixed-length spoof checkpoint: llr = 2 score - 1.
CALIBRATION = Calibration(2.0, -1.0)


def save_checkpoint(path: Path, task: str, module: torch.nn.Module, **extra) -> Path:
    torch.save({"lcnn_task": task, "hyper_parameters": dict(module.hparams), "lcnn_config": {"task": task},
                "state_dict": module.state_dict(), **extra}, path)  # fmt: skip
    return path


def make_checkpoints(root: Path) -> dict[str, Path]:
    """``lstm`` (lcnn_lstm on the MiniSpoof recipe's spectrogram), ``fixed`` (lcnn on 64 LFCC frames, with a
    calibration), ``face`` (LightCNN-9, threshold 0.5), ``digits`` (the article's LCNN, 10 classes) and
    ``released`` (a LightCNN-9 file in the official layout)."""
    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    spec = frontend_config("spec", f_max=4000.0, trim_silence=True)
    lstm = SpoofModule(model="lcnn_lstm", n_features=build_frontend(spec).n_features, frontend=spec)
    fixed = SpoofModule(model="lcnn", n_features=60, frames=64, frontend=frontend_config("lfcc"))
    face = FaceModule(model="lightcnn9", num_classes=3, classes=["p0", "p1", "p2"])
    digits = ClassificationModule(model="lcnn", num_classes=10, input_shape=(1, 28, 28), classes=list("0123456789"))
    for module, threshold in ((lstm, 0.0), (fixed, 0.0), (face, 0.5)):
        module.threshold.fill_(threshold)
    released = {f"module.{k}": v for k, v in face.model.state_dict().items() if not k.startswith("fc2.")}
    torch.save({"epoch": 1, "state_dict": released}, root / "LightCNN_9Layers_checkpoint.pth.tar")
    return {
        "lstm": save_checkpoint(root / "lstm.ckpt", "spoof", lstm),
        "fixed": save_checkpoint(root / "fixed.ckpt", "spoof", fixed, lcnn_calibration=CALIBRATION.to_dict()),
        "face": save_checkpoint(root / "face.ckpt", "face", face),
        "digits": save_checkpoint(root / "digits.ckpt", "classify", digits),
        "released": root / "LightCNN_9Layers_checkpoint.pth.tar",
    }


def speech(seconds: float, rate: int = 16000, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A noisy harmonic 'voice' with a varying pitch, ``(samples,)`` or ``(samples, channels)`` in [-0.3, 0.3]."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 10)) + 0.2 * rng.standard_normal(t.size)
    x = 0.3 * x / np.abs(x).max()
    return np.repeat(x[:, None], channels, 1) if channels > 1 else x


def audio_bytes(seconds: float = 1.0, fmt: str = "WAV", rate: int = 16000, seed: int = 0, channels: int = 1,
                subtype: str | None = None) -> bytes:  # fmt: skip
    buffer = io.BytesIO()
    sf.write(buffer, speech(seconds, rate, seed, channels), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def image_bytes(size: tuple[int, int] = (92, 112), fmt: str = "PNG", seed: int = 0, mode: str = "L") -> bytes:
    """A smooth random image of ``size`` (width, height)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (14, 12), dtype=np.uint8)).resize(size, Image.BILINEAR)
    buffer = io.BytesIO()
    small.convert(mode).save(buffer, fmt)
    return buffer.getvalue()
