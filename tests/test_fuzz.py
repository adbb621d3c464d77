"""Every parser of user files, fed arbitrary bytes and near-valid text: a parse or one ``DataError`` (a
``UserError``), never another exception, never a hang. Then a matrix of corrupted files (truncated, zero-byte,
wrong magic, a huge header) over images, audio, IDX and checkpoints.

The default run draws a fixed, derandomised set of examples (``LCNN_FUZZ_EXAMPLES`` per parser, 150 by
default) so that CI is repeatable; set ``LCNN_FUZZ_EXAMPLES=5000`` (and ``LCNN_FUZZ_RANDOM=1``) for a long run.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lcnn.audio import load_audio
from lcnn.data.images import open_image, read_idx
from lcnn.data.pairs import read_pairs
from lcnn.data.protocols import read_protocol
from lcnn.errors import UserError
from lcnn.metrics import read_asv_scores
from lcnn.models import load_lightcnn
from lcnn.score.files import read_scores
from lcnn.tasks import read_checkpoint
from lcnn.train import resume_config

EXAMPLES = int(os.environ.get("LCNN_FUZZ_EXAMPLES", 150))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, derandomize=not os.environ.get("LCNN_FUZZ_RANDOM"),
                database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Pieces of the real formats, so that near-valid lines reach the parsers' deeper checks.
TOKENS = ["LA_0001", "LA_T_1000001", "LA_E_2", "E_0001", "-", "A01", "A07", "A13", "bonafide", "spoof", "bona-fide",
          "target", "nontarget", "alaw", "ita_tx", "notrim", "eval", "progress", "hidden_track", "F", "M", "mp3_wb",
          "0", "1", "2", "0.5", "-3.2", "1e308", "nan", "inf", "-inf", "path", "label", "file", "speaker",
          "filename", "cm-score", "a.flac", "../x.flac", "/etc/passwd", "10", "300", "same", "different", "é", "\x00"]
SEPARATORS = [" ", "\t", ",", "  "]


@st.composite
def near_valid_text(draw) -> bytes:
    lines = draw(st.lists(st.lists(st.sampled_from(TOKENS) | st.text(max_size=6), max_size=11), max_size=12))
    sep = draw(st.sampled_from(SEPARATORS))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join(sep.join(fields) for fields in lines).encode("utf-8", "surrogatepass")


FILES = st.binary(max_size=3000) | near_valid_text()


def _parse(tmp_path: Path, name: str, data: bytes, parse) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    try:
        parse(path)
    except UserError:
        pass  # a clear refusal: fine (anything else propagates and fails the test)


@pytest.mark.parametrize("name", ["protocol.txt", "protocol.csv", "meta.csv", "ASVspoof5.dev.track_1.tsv"])
def test_fuzz_protocols(tmp_path, name) -> None:
    @FUZZ
    @given(data=FILES)
    def check(data: bytes) -> None:
        _parse(tmp_path, name, data, read_protocol)

    check()


def test_fuzz_pairs(tmp_path) -> None:
    @FUZZ
    @given(data=FILES)
    def check(data: bytes) -> None:
        _parse(tmp_path, "pairs.txt", data, lambda p: read_pairs(p, tmp_path))

    check()


def test_fuzz_score_files(tmp_path) -> None:
    @FUZZ
    @given(data=FILES)
    def check(data: bytes) -> None:
        _parse(tmp_path, "scores.txt", data, read_scores)
        _parse(tmp_path, "asv.txt", data, read_asv_scores)

    check()


def test_fuzz_idx(tmp_path) -> None:
    header = st.builds(lambda dims, body: bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
                       + body, st.lists(st.integers(0, 2**32 - 1), max_size=5), st.binary(max_size=200))  # fmt: skip

    @FUZZ
    @given(data=st.binary(max_size=500) | header)
    def check(data: bytes) -> None:
        _parse(tmp_path, "images-idx3-ubyte", data, read_idx)
        _parse(tmp_path, "images-idx3-ubyte.gz", gzip.compress(data), read_idx)

    check()


def test_fuzz_run_config(tmp_path) -> None:
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)  # fmt: skip
    configs = st.dictionaries(st.sampled_from(["task", "data", "recipe", "epochs", "seeds", "lr", "model", "x"]),
                              values, max_size=6).map(lambda d: json.dumps(d).encode())  # fmt: skip

    @FUZZ
    @given(data=st.binary(max_size=300) | configs)
    def check(data: bytes) -> None:
        (tmp_path / "config.json").write_bytes(data)
        try:
            resume_config(tmp_path)
        except UserError:
            pass

    check()


def test_fuzz_checkpoints(tmp_path) -> None:
    @FUZZ
    @given(data=st.binary(max_size=2000))
    def check(data: bytes) -> None:
        _parse(tmp_path, "x.ckpt", data, read_checkpoint)
        _parse(tmp_path, "x.pth.tar", data, lambda p: load_lightcnn(p, "lightcnn9"))

    check()


def test_fuzz_audio_and_images(tmp_path) -> None:
    @FUZZ
    @given(data=st.binary(max_size=2000))
    def check(data: bytes) -> None:
        _parse(tmp_path, "x.flac", data, load_audio)
        _parse(tmp_path, "x.png", data, open_image)

    check()


# ------------------------------------------------------------------------------------------------ corrupted files


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header whose IHDR claims ``width`` x ``height`` (a valid chunk, no pixel data to speak of)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _wav_claiming(frames: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, np.zeros(160, np.float32), 16000, format="WAV", subtype="PCM_16")
    data = bytearray(out.getvalue())
    data[40:44] = struct.pack("<I", min(frames * 2, 2**32 - 1))  # the data chunk's size
    return bytes(data)


def _valid(kind: str, tmp_path: Path) -> bytes:
    buf = io.BytesIO()
    if kind in ("png", "jpeg", "pgm"):
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30), dtype=np.uint8)).save(
            buf, format={"png": "PNG", "jpeg": "JPEG", "pgm": "PPM"}[kind])
    elif kind in ("flac", "wav"):
        sf.write(buf, np.sin(np.arange(8000) / 9).astype(np.float32) * 0.3, 16000, format=kind.upper())
    elif kind == "idx":
        array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
        buf.write(bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in array.shape) + array.tobytes())
    else:  # an lcnn checkpoint or a released LightCNN file
        from lcnn.models import create_model

        state = create_model("lightcnn9", num_classes=0).state_dict()
        lcnn = {"lcnn_task": "face", "state_dict": state, "hyper_parameters": {"model": "lightcnn9"}}
        torch.save({"state_dict": state} if kind == "pth" else lcnn, buf)
    return buf.getvalue()


READERS = {
    "png": (".png", open_image), "jpeg": (".jpg", open_image), "pgm": (".pgm", open_image),
    "flac": (".flac", load_audio), "wav": (".wav", load_audio), "idx": ("-idx3-ubyte", read_idx),
    "ckpt": (".ckpt", read_checkpoint), "pth": (".pth.tar", lambda p: load_lightcnn(p, "lightcnn9")),
}  # fmt: skip
HUGE = {
    "png": lambda valid: _png_claiming(60000, 60000),
    "wav": lambda valid: _wav_claiming(2**31),
    "idx": lambda valid: bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3 + valid[16:],
    "flac": lambda valid: valid[:18] + b"\xff" * 8 + valid[26:],  # STREAMINFO's sample count and rate fields
}


DAMAGES = [(kind, damage) for kind in READERS
           for damage in ("truncated-10", "truncated-50", "truncated-99", "zero-byte", "wrong-magic", "huge")
           if damage != "huge" or kind in HUGE]  # JPEG, PGM and checkpoints have no size header to inflate


@pytest.mark.parametrize("kind, damage", DAMAGES)
def test_corrupted_files_are_refused_with_their_name(kind: str, damage: str, tmp_path: Path) -> None:
    suffix, read = READERS[kind]
    valid = _valid(kind, tmp_path)
    if damage.startswith("truncated"):
        data = valid[: len(valid) * int(damage.split("-")[1]) // 100]
    elif damage == "zero-byte":
        data = b""
    elif damage == "wrong-magic":
        data = bytes(b ^ 0xFF for b in valid[:4]) + valid[4:]
    else:
        data = HUGE[kind](valid)
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(data)
    try:
        damaged = read(path)
    except UserError as refused:
        assert path.name in str(refused)
        return
    # Not refused: only where the damage left every byte of the content (a PNG cut in its end marker, say).
    whole = tmp_path / f"whole{suffix}"
    whole.write_bytes(valid)
    assert np.array_equal(np.asarray(damaged), np.asarray(read(whole))), f"{kind} {damage}: read wrong data"


# ---------------------------------------------------------------------------------------------------------
# Command-line values: the numeric options, the --augment grammar and degrade's codec chains


NUMBERS = st.sampled_from(["0", "-1", "1", "0.5", "1e9", "1e-9", "nan", "inf", "-inf", "1e308", "70000", "65535",
                           "", " ", "0x10", "1_000", "½", "٣"]) | st.text(max_size=8)  # fmt: skip
OPTIONS = [["score", "m.ckpt", "l.txt", "--segment"], ["score", "m.ckpt", "l.txt", "--segment", "4", "--hop"],
           ["serve", "m.ckpt", "--port"], ["serve", "m.ckpt", "--max-wait-ms"], ["serve", "m.ckpt", "--max-batch"],
           ["calibrate", "s.txt", "--out", "c.json", "--p-spoof"], ["train", "--epochs"], ["train", "--lr"],
           ["predict", "--task", "spoof", "m.ckpt", "a.wav", "--threshold"]]  # fmt: skip


def test_fuzz_numeric_options(capsys) -> None:
    """A value out of range or not a number is argparse's one line (exit 2) before anything runs; the values
    taken are finite and in range."""
    from lcnn.cli import build_parser
    from lcnn.cli.parsing import Parser

    @FUZZ
    @given(value=NUMBERS, prefix=st.sampled_from(OPTIONS))
    def check(value: str, prefix: list[str]) -> None:
        task = "spoof" if "--task" in prefix else "classify"
        try:
            args = build_parser(task).parse_args([*prefix, value])
        except UserError as err:
            assert "\n" not in str(err)
            return
        parsed = getattr(args, prefix[-1].lstrip("-").replace("-", "_"), None)
        if isinstance(parsed, float):
            assert np.isfinite(parsed), (prefix, value)
        if prefix[-1] == "--port":
            assert 1 <= parsed <= 65535

    assert issubclass(type(build_parser("classify")), Parser)
    check()


AUGMENT_TOKENS = ["rawboost", "codec", "noise", "reverb", "speed", ":", ",", "@", "p=", "snr=", "0.5", "1e9", "nan",
                  "-3", "mp3", "opus", "amr", "mulaw", "3", "9", "/tmp", "", "=", "0.9", "1.1"]  # fmt: skip


def test_fuzz_augment_grammar() -> None:
    """Any ``--augment`` item is a spec or one UserError; a spec's numbers are finite and in range."""
    from lcnn.audio.augment import SPEED_RANGE, parse_augment

    @FUZZ
    @given(items=st.lists(st.lists(st.sampled_from(AUGMENT_TOKENS) | st.text(max_size=4), max_size=8).map("".join),
                          min_size=1, max_size=3))  # fmt: skip
    def check(items: list[str]) -> None:
        try:
            spec = parse_augment(items, check=False)
        except UserError:
            return
        if spec.speed is not None:
            assert all(SPEED_RANGE[0] <= f <= SPEED_RANGE[1] for f in spec.speed.factors)
        for part in (spec.rawboost, spec.codec, spec.noise, spec.reverb, spec.speed):
            assert part is None or 0 < part.p <= 1

    check()


def test_fuzz_codec_chains() -> None:
    """Any ``degrade --chain`` text is a list of steps or one UserError (ffmpeg not consulted)."""
    from lcnn.audio.codecs import CODECS, parse_chain

    tokens = [*CODECS, ":", ",", "k", "32", "4.75", "0", "-1", "1e9", "nan", " ", "amr-nb", "32000"]

    @FUZZ
    @given(text=st.lists(st.sampled_from(tokens) | st.text(max_size=3), max_size=10).map("".join))
    def check(text: str) -> None:
        try:
            steps = parse_chain(text, check=False)
        except UserError:
            return
        assert steps and all(step.codec in CODECS for step in steps)

    check()
