"""Counter-based random numbers for per-sample seeding: 32-bit hashes of ``(seed, stream, index)`` computed in
int64 without overflow, so they are identical on any device and for any batch composition (a row depends on
its own seed only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_M32 = 0xFFFFFFFF


def mul32(x: Tensor, c: int) -> Tensor:
    """``(x * c) mod 2**32`` for ``0 <= x < 2**32``, split in 16-bit halves of ``c`` so int64 never overflows."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def mix32(x: Tensor) -> Tensor:
    """A bijective 32-bit integer hash (Wellons' "lowbias32" constants) on int64 tensors in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def stream_keys(seeds: Tensor, stream: int) -> Tensor:
    """(batch,) 32-bit keys for one stream: a hash of the 64-bit seed and the stream number."""
    key = mix32((seeds & _M32) ^ 0x9E3779B9)
    key = mix32(key ^ ((seeds >> 32) & _M32))
    return mix32(key ^ (stream & _M32))


def bits(seeds: Tensor, stream: int, n: int) -> Tensor:
    """(batch, n) 32-bit hashes of ``(seed, stream, index)``, index = 0..n-1.

    For a fixed seed and stream the map index -> hash is a bijection, so the values never repeat.
    """
    key = stream_keys(seeds, stream)[:, None]
    counter = mix32(torch.arange(n, device=seeds.device, dtype=torch.int64))[None, :]
    return mix32(mix32(key ^ counter) ^ (key >> 1))


def uniform(seeds: Tensor, stream: int, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """(batch, *shape) uniform in [0, 1) with 32-bit resolution (used for per-sample parameters)."""
    n = math.prod(shape)
    u = bits(seeds, stream, n).to(torch.float64) / 2.0**32
    return u.reshape(seeds.shape[0], *shape).to(dtype)


def uniform_open(seeds: Tensor, stream: int, n: int, dtype: torch.dtype) -> Tensor:
    """(batch, n) uniform in (0, 1], exactly representable in float32 (safe inside a log)."""
    return ((bits(seeds, stream, n) >> 8) + 1).to(dtype) * 2.0**-24


def between(u: Tensor, low: float, high: float) -> Tensor:
    """numpy's ``uniform(low, high)`` from u in [0, 1): ``low + (high - low) * u`` (also when low > high)."""
    return low + (high - low) * u
