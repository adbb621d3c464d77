"""``lcnn serve`` in process: every endpoint against the model run directly, every error code, the API key,
the streamed limits, batching, readiness, metrics and temporary files."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")

import httpx  # noqa: E402
import soundfile as sf  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from serving import CALIBRATION, audio_bytes, image_bytes, make_checkpoints  # noqa: E402

import lcnn.precision  # noqa: E402
from lcnn.cli import main  # noqa: E402
from lcnn.errors import UserError  # noqa: E402
from lcnn.score.segments import segment_bounds  # noqa: E402
from lcnn.serve import Settings, create_app, load_models  # noqa: E402
from lcnn.serve.batcher import Batcher  # noqa: E402
from lcnn.serve.decode import sniff_audio  # noqa: E402
from lcnn.serve.errors import ClientError  # noqa: E402
from lcnn.tasks import get_task  # noqa: E402

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    return make_checkpoints(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def models(checkpoints: dict[str, Path]) -> dict:
    names = ["lstm", "fixed", "face", "digits"]
    loaded = load_models([str(checkpoints[n]) for n in names] + [f"official={checkpoints['released']}"], "lightcnn9")
    return {m.name: m for m in loaded}


@pytest.fixture(scope="module")
def client(models: dict):
    with TestClient(create_app(list(models.values()), Settings(max_upload_bytes=4 * 2**20, max_audio_seconds=60,
                                                              max_image_pixels=1000 * 1000))) as c:  # fmt: skip
        yield c


def _spoof(client: TestClient, data: bytes, model: str = "lstm", name: str = "x.wav", form: dict | None = None,
           **kw) -> httpx.Response:  # fmt: skip
    return client.post("/v1/spoof", files={"audio": (name, data)}, data={"model": model, **(form or {})}, **kw)


def _predicted(model, files: list[Path]) -> list[float]:
    """Scores of ``lcnn predict`` (the task's file-by-file path) for the reference."""
    return [float(line.split("\t")[1]) for line in get_task("spoof").predict(model.module, {}, files)]


# ------------------------------------------------------------------------------------------------ decoding


def test_segment_bounds_cover_the_audio_with_half_overlapping_windows() -> None:
    assert segment_bounds(100, 100, 50) == [(0, 100)]
    assert segment_bounds(30, 100, 50) == [(0, 30)]
    assert segment_bounds(250, 100, 50) == [(0, 100), (50, 150), (100, 200), (150, 250)]
    assert segment_bounds(260, 100, 50) == [(0, 100), (50, 150), (100, 200), (150, 250), (160, 260)]


def test_audio_is_recognised_by_its_bytes() -> None:
    assert [sniff_audio(audio_bytes(0.5, f)) for f in ("WAV", "FLAC", "OGG", "MP3")] == ["WAV", "FLAC", "OGG", "MP3"]
    assert sniff_audio(b"ID3\x04" + bytes(20)) == "MP3"
    for other in (b"PK\x03\x04zip", b"RIFF\0\0\0\0AVI ", b"\xff\xff\xff\xff", image_bytes(), b"", b"fLa"):
        assert sniff_audio(other) is None


# ------------------------------------------------------------------------------------------------ endpoints


def test_health_readiness_and_the_model_list(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    names = ["lstm", "fixed", "face", "digits", "official"]
    assert client.get("/readyz").json() == {"status": "ready", "models": names}
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert {n: (m["task"], m["architecture"], m["threshold"]) for n, m in listed.items()} == {
        "lstm": ("spoof", "lcnn_lstm", 0.0), "fixed": ("spoof", "lcnn", 0.0), "face": ("face", "lightcnn9", 0.5),
        "digits": ("classify", "lcnn", None), "official": ("face", "lightcnn9", None)}  # fmt: skip
    assert listed["fixed"]["calibrated"] and not listed["lstm"]["calibrated"]
    assert listed["lstm"]["sample_rate"] == 16000


def test_spoof_scores_every_format_as_lcnn_predict_does(client: TestClient, models: dict, tmp_path: Path) -> None:
    files, results = [], []
    for fmt in ("WAV", "FLAC", "OGG", "MP3"):
        data = audio_bytes(1.5, fmt)
        (file := tmp_path / f"a.{fmt.lower()}").write_bytes(data)
        files.append(file)
        results.append(_spoof(client, data, name="no-extension").json())
    for result, expected in zip(results, _predicted(models["lstm"], files)):
        assert set(result) == {"model", "score", "llr", "decision", "threshold", "duration", "segments"}
        assert result["model"] == "lstm" and result["segments"] is None and result["llr"] is None
        assert result["duration"] == pytest.approx(1.5, abs=0.06)  # MP3 frames round the length
        assert result["decision"] == ("bonafide" if result["score"] >= 0.0 else "spoof")
        assert result["score"] == pytest.approx(expected, abs=1e-5)


def test_spoof_resamples_and_mixes_down(client: TestClient, models: dict) -> None:
    stereo = audio_bytes(1.0, "WAV", rate=44100, channels=2)
    result = _spoof(client, stereo).json()
    assert result["duration"] == pytest.approx(1.0)
    mono = _spoof(client, audio_bytes(1.0, "WAV", rate=44100)).json()
    assert result["score"] == pytest.approx(mono["score"], abs=1e-4)


def test_long_audio_is_scored_whole_and_in_windows_when_asked(client: TestClient, models: dict,
                                                               tmp_path: Path) -> None:  # fmt: skip
    data = audio_bytes(9.0, "WAV", subtype="PCM_16")
    samples = sf.read(io.BytesIO(data), dtype="int16")[0]
    sf.write(whole := tmp_path / "whole.wav", samples, 16000, subtype="PCM_16")
    result = _spoof(client, data).json()  # the whole utterance, as lcnn predict and lcnn score give it
    assert result["segments"] is None
    assert result["score"] == pytest.approx(_predicted(models["lstm"], [whole])[0], abs=1e-5)

    windowed = _spoof(client, data, form={"segment": "4", "hop": "2"}).json()
    assert [(s["start"], s["end"]) for s in windowed["segments"]] == [(0, 4), (2, 6), (4, 8), (5, 9)]
    assert windowed["score"] == pytest.approx(np.mean([s["score"] for s in windowed["segments"]]))
    assert windowed["decision"] == ("bonafide" if windowed["score"] >= 0 else "spoof")
    sf.write(window := tmp_path / "second-window.wav", samples[32000:96000], 16000, subtype="PCM_16")
    assert windowed["segments"][1]["score"] == pytest.approx(_predicted(models["lstm"], [window])[0], abs=1e-5)
    lowest = _spoof(client, data, form={"segment": "4", "hop": "2", "aggregate": "min"}).json()
    assert lowest["score"] == pytest.approx(min(s["score"] for s in windowed["segments"]))

    fixed = _spoof(client, audio_bytes(2.0), model="fixed", form={"segment": "0.64", "hop": "0.32"}).json()
    assert len(fixed["segments"]) == 6 and fixed["segments"][-1]["end"] == pytest.approx(2.0)
    assert fixed["llr"] == pytest.approx(CALIBRATION.a * fixed["score"] + CALIBRATION.b)
    assert all(s["llr"] == pytest.approx(2 * s["score"] - 1) for s in fixed["segments"])
    short = _spoof(client, audio_bytes(0.5), model="fixed", form={"segment": "4"}).json()  # one window: the whole
    assert [(s["start"], s["end"]) for s in short["segments"]] == [(0, 0.5)]
    for form, why in (({"hop": "2"}, "'hop' needs a 'segment'"), ({"segment": "x"}, "must be a number"),
                      ({"segment": "4", "aggregate": "median"}, "'aggregate'")):  # fmt: skip
        refused = _spoof(client, data, form=form)
        assert refused.status_code == 422 and why in refused.text


def test_verify_embed_and_classify_match_the_models(client: TestClient, models: dict) -> None:
    a, b = image_bytes(seed=1), image_bytes((200, 150), "JPEG", seed=2, mode="RGB")
    face = models["face"]
    with torch.inference_mode():
        x = torch.stack([face.transform(Image.open(io.BytesIO(d))) for d in (a, b)])
        emb = torch.nn.functional.normalize(face.module.embed(x), dim=1)
    files = {"image1": ("a.png", a), "image2": ("b.jpg", b)}
    result = client.post("/v1/verify", files=files, data={"model": "face"}).json()
    assert result["similarity"] == pytest.approx(float(emb[0] @ emb[1]), abs=1e-4)
    assert result["threshold"] == 0.5 and result["same"] == (result["similarity"] >= 0.5)
    given = client.post("/v1/verify", files=files, data={"model": "face", "threshold": "1"}).json()
    assert (given["threshold"], given["same"]) == (1.0, False)
    released = client.post("/v1/verify", files=files, data={"model": "official"}).json()
    assert released["threshold"] is None and released["same"] is None

    embedded = client.post("/v1/embed", files=[("image", ("a", a)), ("image", ("b", b))], data={"model": "face"}).json()
    assert embedded["dimension"] == 256 and len(embedded["embeddings"]) == 2
    assert torch.allclose(torch.nn.functional.normalize(torch.tensor(embedded["embeddings"]), dim=1), emb, atol=1e-4)

    digits = models["digits"]
    image = image_bytes((40, 40), seed=3)
    result = client.post("/v1/classify", files={"image": ("d.png", image)}, data={"top_k": "3"}).json()
    x = torch.from_numpy(np.array(Image.open(io.BytesIO(image)).resize((28, 28), Image.BILINEAR))).float() / 255
    with torch.inference_mode():
        probs = digits.module.log_probs(x[None, None]).exp()[0]
    best = probs.argsort(descending=True)[:3].tolist()
    assert [p["class"] for p in result["predictions"][0]] == [str(i) for i in best]
    assert [p["probability"] for p in result["predictions"][0]] == pytest.approx(probs[best].tolist(), abs=1e-5)
    two = client.post("/v1/classify", files=[("image", ("a", image)), ("image", ("b", a))]).json()["predictions"]
    assert len(two) == 2 and len(two[0]) == 5


# ------------------------------------------------------------------------------------------------ refusals


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels, with no pixel data (a decompression-bomb probe)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    pixels = chunk(b"IDAT", zlib.compress(bytes(1000)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def _silence_bomb() -> bytes:
    """One hour of silence as FLAC: 180 kB that would decode to 115 MB of samples."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16000 * 3600, np.int16), 16000, format="FLAC")
    return buffer.getvalue()


def _zip_named_flac() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.bin", bytes(50 * 2**20))  # 50 MB of zeros in ~50 kB
    return buffer.getvalue()


FLAC = audio_bytes(2.0, "FLAC")
REFUSALS = [  # (endpoint, files, form, status, error)
    ("spoof", {"audio": ("a.flac", FLAC[: len(FLAC) // 2])}, {}, 400, "undecodable"),
    ("spoof", {"audio": ("a.flac", b"fLaC" + bytes(4000))}, {}, 400, "undecodable"),
    ("spoof", {"audio": ("a.wav", b"")}, {}, 400, "undecodable"),
    ("spoof", {"audio": ("a.flac", _zip_named_flac())}, {}, 415, "unsupported type"),
    ("spoof", {"audio": ("a.wav", image_bytes())}, {}, 415, "unsupported type"),
    ("spoof", {"audio": ("a.flac", _silence_bomb())}, {}, 413, "too large"),
    ("spoof", {"sound": ("a.wav", FLAC)}, {}, 422, "missing field"),
    ("spoof", {"audio": ("a.wav", FLAC)}, {"model": None}, 422, "missing field"),  # two spoof models: name one
    ("spoof", {"audio": ("a.wav", FLAC)}, {"model": "nope"}, 404, "unknown model"),
    ("spoof", {"audio": ("a.wav", FLAC)}, {"model": "face"}, 422, "wrong model"),
    ("verify", {"image1": ("a.png", image_bytes())}, {"model": "face"}, 422, "missing field"),
    ("verify", {"image1": ("a", _png_claiming(60000, 60000)), "image2": ("b", image_bytes())}, {"model": "face"},
     413, "too large"),
    ("verify", {"image1": ("a", _png_claiming(2000, 2000)), "image2": ("b", image_bytes())}, {"model": "face"},
     413, "too large"),
    ("verify", {"image1": ("a", image_bytes()[:200]), "image2": ("b", image_bytes())}, {"model": "face"},
     400, "undecodable"),
    ("verify", {"image1": ("a", b"%!PS-Adobe-3.0 EPSF-3.0\n"), "image2": ("b", image_bytes())}, {"model": "face"},
     415, "unsupported type"),
    ("verify", {"image1": ("a", image_bytes()), "image2": ("b", image_bytes())}, {"model": "face", "threshold": "x"},
     422, "invalid request"),
    ("classify", {"image": ("a", image_bytes())}, {"top_k": "0"}, 422, "invalid request"),
    ("embed", {"image": ("a", FLAC)}, {"model": "face"}, 415, "unsupported type"),
]  # fmt: skip


@pytest.mark.parametrize("endpoint, files, form, status, error", REFUSALS)
def test_client_errors_are_json_4xx(client: TestClient, checkpoints: dict, endpoint, files, form, status,
                                    error) -> None:  # fmt: skip
    form = {"model": "lstm", **form} if endpoint == "spoof" else form
    response = client.post(f"/v1/{endpoint}", files=files, data={k: v for k, v in form.items() if v is not None})
    assert (response.status_code, response.json()["error"]) == (status, error), response.json()
    assert set(response.json()) == {"error", "detail"}
    assert str(checkpoints["lstm"].parent) not in response.text and "Traceback" not in response.text


def test_other_requests_are_json_4xx_too(client: TestClient) -> None:
    cases = [(client.post("/v1/spoof", json={"audio": "x"}), 415, "unsupported type"),
             (client.post("/v1/spoof", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"}),
              400, "bad request"),
             (client.get("/v1/spoof"), 405, "method not allowed"), (client.get("/nothing"), 404, "not found"),
             (client.get("/static/../app.py"), 404, "not found")]  # fmt: skip
    for response, status, error in cases:
        assert (response.status_code, response.json()["error"]) == (status, error)


def test_page_and_its_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="spoof-file"' in page.text and "/static/app.js" in page.text
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        assert kind in client.get(f"/static/{name}").headers["content-type"]
    paths = client.get("/openapi.json").json()["paths"]  # /docs lists the form fields
    form = paths["/v1/verify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image1", "image2"] and {"model", "threshold"} <= set(form["properties"])


def test_an_unexpected_failure_is_a_generic_500(models: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(batch):
        raise RuntimeError("secret internal state at /srv/models/x.ckpt")

    monkeypatch.setattr(models["digits"], "run", broken)
    with TestClient(create_app(list(models.values())), raise_server_exceptions=False) as client:
        response = client.post("/v1/classify", files={"image": ("a", image_bytes())})
        assert response.status_code == 500 and response.json()["error"] == "internal error"
        assert "secret" not in response.text and "Traceback" not in response.text
        assert 'lcnn_errors_total{kind="internal"} 1.0' in client.get("/metrics").text
        assert client.get("/healthz").status_code == 200


# ------------------------------------------------------------------------------------------------ the key


def test_the_api_key_guards_v1_only(models: dict) -> None:
    with TestClient(create_app(list(models.values()), Settings(api_key=KEY))) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                        {"Authorization": f"Bearer {KEY}x"}):  # fmt: skip
            response = _spoof(client, FLAC, headers=headers)
            assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/models").status_code == 401
        assert _spoof(client, FLAC, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert all(client.get(p).status_code == 200 for p in ("/healthz", "/readyz", "/metrics", "/"))


# ------------------------------------------------------------------------------------------------ streaming


async def _with_app(app, work):
    """Run ``work(client)`` against ``app`` through httpx's ASGI transport, which streams request bodies."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await work(client)


def test_a_body_over_the_limit_is_refused_while_it_streams(models: dict) -> None:
    limit = 2**20
    pulled = []

    async def body(total: int):
        head = b"--b\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n"
        yield head
        for _ in range(total // 65536):
            pulled.append(65536)
            yield bytes(65536)

    async def work(client: httpx.AsyncClient):
        headers = {"content-type": "multipart/form-data; boundary=b"}
        chunked = await client.post("/v1/spoof", content=body(100 * limit), headers=headers)
        streamed = len(pulled)
        pulled.clear()
        declared = await client.post("/v1/spoof", content=body(100 * limit),
                                     headers={**headers, "content-length": str(100 * limit)})  # fmt: skip
        metrics = (await client.get("/metrics")).text
        return chunked, streamed, declared, metrics

    app = create_app(list(models.values()), Settings(max_upload_bytes=limit))
    chunked, streamed, declared, metrics = asyncio.run(_with_app(app, work))
    assert (chunked.status_code, chunked.json()["error"]) == (413, "too large")
    assert streamed * 65536 <= limit + 2 * 65536  # stopped at the first chunk over the limit, not at 100 MB
    assert (declared.status_code, declared.json()["error"]) == (413, "too large") and not pulled  # never read
    assert 'lcnn_errors_total{kind="too large"} 2.0' in metrics


def test_requests_that_arrive_together_are_batched(models: dict) -> None:
    async def work(client: httpx.AsyncClient):
        files = [{"audio": ("a.flac", audio_bytes(0.5, "FLAC", seed=i))} for i in range(8)]
        answers = await asyncio.gather(*(client.post("/v1/spoof", files=f, data={"model": "fixed"}) for f in files))
        alone = await client.post("/v1/spoof", files=files[3], data={"model": "fixed"})
        return answers, alone, (await client.get("/metrics")).text

    settings = Settings(max_batch=8, max_wait_ms=500)
    answers, alone, metrics = asyncio.run(_with_app(create_app(list(models.values()), settings), work))
    assert all(a.status_code == 200 for a in answers)
    assert answers[3].json()["score"] == pytest.approx(alone.json()["score"], abs=1e-5)  # batch mates change nothing
    count = float(next(line.split()[-1] for line in metrics.splitlines()
                       if line.startswith('lcnn_batch_size_count{model="fixed"}')))  # fmt: skip
    total = float(next(line.split()[-1] for line in metrics.splitlines()
                       if line.startswith('lcnn_batch_size_sum{model="fixed"}')))  # fmt: skip
    assert total == 9 and count < 9  # 9 requests in fewer batches: some held several
    assert 'lcnn_requests_total{endpoint="/v1/spoof",status="200"} 9.0' in metrics


def test_the_batcher_fills_batches_and_refuses_when_full() -> None:
    sizes = []

    def run(items):
        sizes.append(len(items))
        return [i * 2 for i in items]

    async def work():
        batcher = Batcher(run, max_batch=4, max_wait_ms=50, max_queue=10)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        with pytest.raises(ClientError, match="busy") as refused:
            await asyncio.gather(*(batcher.submit(i) for i in range(11)))
        await batcher.stop()
        return results, refused.value.status

    results, status = asyncio.run(work())
    assert results == [2 * i for i in range(10)] and sizes[:3] == [4, 4, 2] and status == 503


def test_readyz_waits_for_the_models(models: dict) -> None:
    release = threading.Event()

    def loader():
        release.wait(10)
        return [models["digits"]]

    with TestClient(create_app(loader)) as client:
        assert client.get("/healthz").status_code == 200
        waiting = client.get("/readyz")
        assert (waiting.status_code, waiting.json()["error"]) == (503, "not ready")
        assert client.post("/v1/classify", files={"image": ("a", image_bytes())}).status_code == 503
        release.set()
        for _ in range(100):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert client.get("/readyz").json() == {"status": "ready", "models": ["digits"]}
        assert client.post("/v1/classify", files={"image": ("a", image_bytes())}).status_code == 200

    def failing():
        raise UserError("/srv/private/x.ckpt: not a readable PyTorch checkpoint")

    with TestClient(create_app(failing)) as client:
        for _ in range(100):
            if "failed" in client.get("/readyz").text:
                break
            threading.Event().wait(0.05)
        failed = client.get("/readyz")
        assert failed.status_code == 503 and "log" in failed.json()["detail"] and "/srv" not in failed.text
        assert client.get("/healthz").status_code == 200


def test_image_models_run_in_int8_when_it_agrees_with_fp32(checkpoints: dict, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for i in range(8):
        (tmp_path / f"{i}.png").write_bytes(image_bytes(seed=i))
    face, digits = load_models([str(checkpoints["face"]), str(checkpoints["digits"])], int8_images=tmp_path)
    fp32 = load_models([str(checkpoints["face"])])[0]
    assert (face.precision, digits.precision, fp32.precision) == ("int8", "int8", "fp32")
    images = [face.preprocess(Image.open(io.BytesIO(image_bytes(seed=20 + i)))) for i in range(3)]
    a, b = torch.tensor(np.stack(face.embed(images))), torch.tensor(np.stack(fp32.embed(images)))
    assert not torch.equal(a, b) and torch.nn.functional.cosine_similarity(a, b).min() > 0.99
    monkeypatch.setattr(lcnn.precision, "INT8_AGREEMENT", 1.01)  # int8 never agrees that well: the model stays fp32
    calibration = [Image.open(p) for p in sorted(tmp_path.glob("*.png"))]
    assert fp32.use_int8(calibration).startswith("fp32: int8 agreement") and fp32.precision == "fp32"


def test_no_temporary_file_is_left(client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Uploads over 1 MB are spooled to disk by the multipart parser; each is closed (and so deleted) on
    every path, refusals included."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    big = audio_bytes(40.0, "WAV")  # 1.3 MB
    assert len(big) > 2**20
    assert _spoof(client, big).status_code == 200
    assert _spoof(client, b"RIFF" + big[4:20] + bytes(len(big))).status_code == 400
    assert _spoof(client, big, model="nope").status_code == 404
    assert client.post("/v1/verify", files={"image1": ("a", big)}, data={"model": "face"}).status_code == 422
    assert list(spool.iterdir()) == [] and not _open_files_in(spool)
    with tempfile.SpooledTemporaryFile(max_size=2**20) as control:  # the check sees a spooled file
        control.write(big)
        assert len(_open_files_in(spool)) == 1


def _open_files_in(folder: Path) -> list[str]:
    """This process's open files in ``folder``, deleted ones included (``/proc/self/fd``)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # closed meanwhile
            pass
    return [link for link in links if link.startswith(str(folder))]


# ------------------------------------------------------------------------------------------------ command line


def test_serve_help_needs_neither_torch_nor_fastapi() -> None:
    script = """
import contextlib, io, sys
from lcnn.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(["serve", "--help"])
    except SystemExit:
        pass
assert "--api-key-file" in out.getvalue() and "--max-batch" in out.getvalue()
print(sorted(m for m in ("torch", "fastapi", "uvicorn", "numpy") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_only_loopback_addresses_count_as_local() -> None:
    from lcnn.serve.command import _is_local

    assert all(map(_is_local, ("127.0.0.1", "127.0.0.2", "::1", "localhost")))
    assert not any(map(_is_local, ("0.0.0.0", "::", "192.168.1.5", "example.com")))


def test_serve_refuses_bad_options_in_one_line(checkpoints: dict, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "key"
    empty.write_text("\n")
    digits = str(checkpoints["digits"])
    for argv, message in ((["serve", str(tmp_path / "missing.ckpt")], "no such checkpoint"),
                          (["serve", digits, "--max-batch", "0"], "argument --max-batch: must be at least 1, got 0"),
                          (["serve", digits, "--api-key-file", str(empty)], "API key file is empty"),
                          (["serve", str(checkpoints["released"])], "--model"),
                          (["serve", digits, f"digits={checkpoints['lstm']}"], "two models")):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
