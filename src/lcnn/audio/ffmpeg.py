"""The ffmpeg binary that codec augmentation runs: where it is, which encoders it has, and running it through
pipes with a timeout.

Which ffmpeg: ``$LCNN_FFMPEG`` if set; else, per codec, the first of the static binary of the ``imageio-ffmpeg``
package (``pip install imageio-ffmpeg``, or ``lcnn[augment]``) and ``ffmpeg`` on ``PATH`` that has the codec's
encoder. The static binary comes first because codec augmentation starts two ffmpeg processes per codec
and batch, and a distribution's ffmpeg, linked against a hundred shared libraries, takes several times as
long to start; the one on ``PATH`` still serves the encoders the static one lacks (GSM). Nothing is looked
up at import time.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess

from lcnn.errors import UserError

__all__ = ["FFMPEG_ENV", "CodecError", "ffmpeg_candidates", "ffmpeg_encoders", "find_ffmpeg", "run_ffmpeg"]

FFMPEG_ENV = "LCNN_FFMPEG"


class CodecError(RuntimeError):
    """ffmpeg failed or timed out on a wave; the message names the codec, the binary and ffmpeg's complaint."""


def find_ffmpeg() -> str:
    """The first ffmpeg binary to try (:func:`ffmpeg_candidates`).

    Raises:
        UserError: ``$LCNN_FFMPEG`` points at nothing executable, or no ffmpeg is found at all.
    """
    return ffmpeg_candidates()[0]


def ffmpeg_candidates() -> tuple[str, ...]:
    """The ffmpeg binaries to use, in order: ``$LCNN_FFMPEG`` alone if set, else imageio-ffmpeg's static binary
    and ``ffmpeg`` on ``PATH``, those that exist.

    Raises:
        UserError: ``$LCNN_FFMPEG`` points at nothing executable, or no ffmpeg is found at all.
    """
    return _ffmpeg_candidates(os.environ.get(FFMPEG_ENV, ""), os.environ.get("PATH", ""))


@functools.lru_cache(maxsize=8)
def _ffmpeg_candidates(override: str, path_var: str) -> tuple[str, ...]:
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise UserError(
                f"{FFMPEG_ENV}={override}: no executable ffmpeg there; point it at an ffmpeg binary or unset it "
                "to use imageio-ffmpeg's or the one on PATH"
            )
        return (override,)
    found = []
    try:
        import imageio_ffmpeg

        found.append(str(imageio_ffmpeg.get_ffmpeg_exe()))
    except (ImportError, RuntimeError):
        pass
    on_path = shutil.which("ffmpeg", path=path_var or None)
    if on_path:
        found.append(on_path)
    if not found:
        raise UserError(
            "codec augmentation needs ffmpeg and none was found: pip install imageio-ffmpeg (or lcnn[augment]), "
            f"install ffmpeg (apt-get install ffmpeg), or set {FFMPEG_ENV} to a binary"
        )
    return tuple(dict.fromkeys(found))


@functools.lru_cache(maxsize=8)
def ffmpeg_encoders(ffmpeg: str) -> frozenset[str]:
    """The encoder names ``ffmpeg -encoders`` lists for this binary (cached per binary)."""
    try:
        proc = subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-encoders"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"{ffmpeg}: cannot run it as ffmpeg ({err})") from None
    names = re.findall(r"^\s*[VAS][A-Z.]{5}\s+(\w+)", proc.stdout.decode(errors="replace"), flags=re.M)
    if proc.returncode != 0 or not names:
        raise UserError(f"{ffmpeg}: does not list encoders like ffmpeg (exit {proc.returncode})")
    return frozenset(names)


def run_ffmpeg(cmd: list[str], data: bytes, timeout: float, what: str) -> bytes:
    """Run one ffmpeg with ``data`` on stdin; its stdout, or a CodecError naming ``what``.

    A new session lets a timeout kill ffmpeg together with anything it started.
    """
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as err:
        raise CodecError(f"{what}: cannot start {cmd[0]}: {err}") from None
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise CodecError(f"{what}: {cmd[0]} did not finish within {timeout:g} s and was killed") from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        tail = lines[-1].strip() if lines else "no message"
        raise CodecError(f"{what}: {cmd[0]} exited with status {proc.returncode}: {tail}")
    return out
