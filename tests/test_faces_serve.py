"""POST /v1/identify: the face model's gallery searched with the service's own embeddings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402
from serving import image_bytes, make_checkpoints  # noqa: E402

from lcnn.errors import UserError  # noqa: E402
from lcnn.faces.gallery import Gallery, fingerprint  # noqa: E402
from lcnn.serve import Settings, create_app, load_models  # noqa: E402
from lcnn.serve.command import attach_galleries  # noqa: E402


def test_identify_searches_the_gallery_of_the_model(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ckpt = make_checkpoints(tmp_path)["face"]
    specs = [f"face={ckpt}", f"other={ckpt}"]
    models = load_models(specs)
    face = models[0]
    uploads = [image_bytes(seed=s) for s in range(4)]
    inputs = [face.preprocess(Image.open(io.BytesIO(b))) for b in uploads]
    emb = np.stack(face.embed(inputs))
    gallery = Gallery(emb, ["ann", "ann", "bob", "bob"], [f"{i}.png" for i in range(4)],
                      fingerprint(ckpt, "lightcnn9"), False).with_threshold()  # fmt: skip
    gallery.save(tmp_path / "g.npz")
    attach_galleries(models, specs, [f"face={tmp_path / 'g.npz'}"])
    Gallery(emb, ["x"] * 4, ["a"] * 4, "lightcnn9 sha256:0", False).save(tmp_path / "wrong.npz")
    with pytest.raises(UserError, match="enrolled with lightcnn9 sha256:0"):
        attach_galleries(models, specs, [f"other={tmp_path / 'wrong.npz'}"])
    with TestClient(create_app(models, Settings())) as client:
        files = [("image", ("a.png", uploads[2])), ("image", ("b.png", uploads[0]))]
        r = client.post("/v1/identify", files=files, data={"model": "face", "top_k": "2"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [m[0]["identity"] for m in body["matches"]] == ["bob", "ann"]
        assert body["matches"][0][0]["similarity"] == pytest.approx(1.0, abs=1e-4)
        assert body["threshold"] == pytest.approx(gallery.threshold)
        r = client.post("/v1/identify", files=files[:1], data={"model": "other"})
        assert r.status_code == 409 and "no gallery" in r.text
