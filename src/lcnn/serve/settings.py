"""What a server allows and how it batches: the ``lcnn serve`` options and their defaults (standard library
only, so that the command line's parser reads the defaults without importing the service)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["Settings"]


def _decode_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Settings:
    """The limits and batching of one app (:func:`lcnn.serve.create_app`)."""

    max_batch: int = 16  # most requests in one model batch (1: no batching)
    max_wait_ms: float = 5.0  # how long a batch's first request waits for others
    max_queue: int = 256  # requests waiting per model before 503 busy
    max_upload_bytes: int = 20 * 2**20  # the request body, multipart included
    max_audio_seconds: float = 300.0
    max_image_pixels: int = 4096 * 4096
    max_images: int = 32  # per /v1/embed or /v1/classify request
    read_timeout: float = 30.0  # seconds for the whole body to arrive
    decode_threads: int = field(default_factory=_decode_threads)
    api_key: str | None = None  # when set, /v1/* needs 'Authorization: Bearer KEY'

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "max_upload_bytes", "max_image_pixels", "max_images", "decode_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "max_audio_seconds", "read_timeout"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {getattr(self, name)}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty")
