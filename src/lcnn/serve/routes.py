"""The versioned endpoints: ``POST /v1/spoof``, ``/v1/verify``, ``/v1/embed``, ``/v1/classify`` (multipart
uploads) and ``GET /v1/models``. Each reads its form (files held in memory, within the body limit, and
closed on every path), decodes in a decoding thread and runs the model through its batcher."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile

from lcnn.errors import UserError
from lcnn.score.segments import parse_aggregate
from lcnn.serve.decode import decode_audio, decode_image
from lcnn.serve.errors import ClientError, invalid, undecodable, unsupported
from lcnn.serve.limits import check_api_key
from lcnn.serve.models import ServedModel, SpoofRequest
from lcnn.tasks.face.verification import cosine_similarity

__all__ = ["read_form", "v1_router"]


async def read_form(request: Request, files: tuple[str, ...], texts: tuple[str, ...] = (),
                    max_files: int = 2) -> tuple[dict[str, list[bytes]], dict[str, str]]:  # fmt: skip
    """``(bytes of each file field, the text fields given)`` of a multipart body; every file field is
    required (422 when missing, 400 when empty) and the spooled uploads are closed before returning."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise unsupported(f"expected a multipart/form-data body with the field {' and '.join(map(repr, files))}")
    async with request.form(max_files=max_files, max_fields=16, max_part_size=4096) as form:
        uploads = {}
        for name in files:
            parts = form.getlist(name)
            if not parts:
                raise ClientError(422, "missing field", f"the file field {name!r} is required")
            if not all(isinstance(p, UploadFile) for p in parts):
                raise invalid(f"the field {name!r} must be a file upload")
            uploads[name] = [await p.read() for p in parts]  # type: ignore[union-attr]
            if not all(uploads[name]):
                raise undecodable(f"the file in the field {name!r} is empty")
        values = {name: v for name in texts if isinstance(v := form.get(name), str) and v}
    return uploads, values


def _number(text: str | None, name: str, low: float = -math.inf, high: float = math.inf) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise invalid(f"the field {name!r} must be a number, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise invalid(f"the field {name!r} must be between {low:g} and {high:g}, got {value:g}")
    return value


def _one(uploads: dict[str, list[bytes]], name: str) -> bytes:
    if len(uploads[name]) != 1:
        raise invalid(f"the field {name!r} takes one file, got {len(uploads[name])}")
    return uploads[name][0]


def _image_input(model: Any, data: bytes, max_pixels: int) -> Any:
    """Bytes -> the model's input tensor (in a decoding thread)."""
    image = decode_image(data, max_pixels)
    try:
        return model.preprocess(image)
    except (OSError, ValueError) as err:  # an image mode Pillow cannot convert
        raise undecodable(f"cannot convert this {image.format} image ({image.mode}): {err}") from None


def _form(files: dict[str, str], texts: dict[str, str], many: bool = False) -> dict[str, Any]:
    """The OpenAPI description of a multipart body (the endpoints read their forms themselves)."""
    binary = {"type": "array", "items": {"type": "string", "format": "binary"}} if many else \
        {"type": "string", "format": "binary"}  # fmt: skip
    properties = {name: {**binary, "description": text} for name, text in files.items()}
    properties.update({name: {"type": "string", "description": text} for name, text in texts.items()})
    schema = {"type": "object", "required": list(files), "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


MODEL = {"model": "the model's name (GET /v1/models); needed where several models of the task are loaded"}
WINDOWS = {"segment": "score windows of this many seconds (default: the whole utterance)",
           "hop": "seconds between windows (default: segment)",
           "aggregate": "the score of the windows: mean (default), min or quantile:Q"}


def v1_router(settings: Any) -> APIRouter:
    """The ``/v1`` endpoints; with ``settings.api_key`` each needs ``Authorization: Bearer KEY``, checked
    before any of the body is read."""
    dependencies = []
    if settings.api_key:
        key = settings.api_key

        async def require_key(request: Request) -> None:
            check_api_key(request.headers.get("authorization"), key)

        dependencies.append(Depends(require_key))
    router = APIRouter(prefix="/v1", dependencies=dependencies)

    async def images(request: Request, task: str, fields: tuple[str, ...], texts: tuple[str, ...] = (),
                     max_files: int = 2) -> tuple[ServedModel, list[Any], dict[str, str]]:  # fmt: skip
        """The model, its inputs (the files of ``fields``, in order) and the text fields of an image request."""
        service = request.app.state.service
        uploads, values = await read_form(request, fields, ("model", *texts), max_files)
        model = service.pick(task, values.get("model"))
        blobs = [data for name in fields for data in uploads[name]]
        inputs = await asyncio.gather(*(service.decode(_image_input, model, b, settings.max_image_pixels)
                                        for b in blobs))  # fmt: skip
        return model, list(inputs), values

    @router.get("/models")
    async def models(request: Request) -> dict[str, Any]:
        """The loaded models: name, task, architecture, threshold, precision."""
        return {"models": [m.info() for m in request.app.state.service.models.values()]}

    @router.post("/spoof", openapi_extra=_form({"audio": "FLAC, WAV, OGG or MP3"}, {**MODEL, **WINDOWS}))
    async def spoof(request: Request) -> dict[str, Any]:
        """Field ``audio`` (FLAC, WAV, OGG or MP3), optional ``model``: the countermeasure's score of the whole
        utterance (as ``lcnn score`` and ``lcnn predict`` give it), ``llr`` (with a calibration), ``decision``
        (bonafide / spoof), ``threshold``, ``duration``; with ``segment`` (and ``hop``, ``aggregate``) the score
        of windows, as ``lcnn score --segment``, each in ``segments``."""
        service = request.app.state.service
        uploads, values = await read_form(request, ("audio",), ("model", *WINDOWS))
        model = service.pick("spoof", values.get("model"))
        segment = _number(values.get("segment"), "segment", 0.01, settings.max_audio_seconds)
        hop = _number(values.get("hop"), "hop", 0.01, settings.max_audio_seconds)
        if hop is not None and segment is None:
            raise invalid("the field 'hop' needs a 'segment'")
        aggregate = values.get("aggregate") or "mean"
        try:
            parse_aggregate(aggregate)
        except UserError as err:
            raise invalid(str(err).replace("--aggregate", "the field 'aggregate'")) from None
        wave, duration = await service.decode(decode_audio, _one(uploads, "audio"), model.sample_rate,
                                              settings.max_audio_seconds)  # fmt: skip
        [result] = await service.run(model, [SpoofRequest(wave, segment, hop, aggregate)])
        return {"model": model.name, "duration": duration, **result}

    @router.post("/verify", openapi_extra=_form({"image1": "a face", "image2": "another face"},
                                                {**MODEL, "threshold": "cosine threshold, -1 to 1"}))
    async def verify(request: Request) -> dict[str, Any]:
        """Fields ``image1``, ``image2``, optional ``model`` and ``threshold``: the cosine ``similarity`` of the
        two faces and ``same`` at the threshold (the one stored at training unless given; ``null`` without one)."""
        model, inputs, values = await images(request, "face", ("image1", "image2"), ("threshold",))
        threshold = _number(values.get("threshold"), "threshold", -1, 1)
        threshold = model.threshold if threshold is None else threshold
        similarity = cosine_similarity(*await request.app.state.service.run(model, inputs))
        same = None if threshold is None else similarity >= threshold
        return {"model": model.name, "similarity": similarity, "same": same, "threshold": threshold}

    @router.post("/embed", openapi_extra=_form({"image": "face images"}, MODEL, many=True))
    async def embed(request: Request) -> dict[str, Any]:
        """Field ``image`` (one or more), optional ``model``: each image's face embedding."""
        model, inputs, _ = await images(request, "face", ("image",), max_files=settings.max_images)
        embeddings = await request.app.state.service.run(model, inputs)
        return {"model": model.name, "dimension": len(embeddings[0]), "embeddings": [e.tolist() for e in embeddings]}

    @router.post("/classify", openapi_extra=_form({"image": "images"}, {**MODEL, "top_k": "classes per image (5)"},
                                                  many=True))
    async def classify(request: Request) -> dict[str, Any]:
        """Field ``image`` (one or more), optional ``model`` and ``top_k`` (default 5): the most probable classes
        of each image, ``[{"class", "probability"}]``."""
        model, inputs, values = await images(request, "classify", ("image",), ("top_k",), settings.max_images)
        top_k = _number(values.get("top_k"), "top_k", 1, len(model.classes))
        if top_k is not None and top_k != int(top_k):
            raise invalid(f"the field 'top_k' must be a whole number, got {top_k:g}")
        k = min(int(top_k or 5), len(model.classes))
        probabilities = await request.app.state.service.run(model, inputs)
        predictions = [[{"class": str(model.classes[i]), "probability": float(p[i])} for i in np.argsort(-p)[:k]]
                       for p in probabilities]  # fmt: skip
        return {"model": model.name, "predictions": predictions}

    @router.post("/identify", openapi_extra=_form({"image": "face images"}, {**MODEL, "top_k": "identities per "
                                                  "image (1)"}, many=True))  # fmt: skip
    async def identify(request: Request) -> dict[str, Any]:
        """Field ``image`` (one or more), optional ``model`` and ``top_k``: each image's most similar identities
        in the model's gallery (``lcnn serve --gallery NAME=G``), ``unknown`` first below its threshold."""
        model, inputs, values = await images(request, "face", ("image",), ("top_k",), max_files=settings.max_images)
        gallery = getattr(model, "gallery", None)
        if gallery is None:
            raise ClientError(409, "no gallery", f"model {model.name!r} has no gallery (lcnn serve --gallery)")
        top_k = int(_number(values.get("top_k"), "top_k", 1, 100) or 1)
        found = gallery.search(np.stack(await request.app.state.service.run(model, inputs)), top_k)
        threshold = gallery.threshold if math.isfinite(gallery.threshold) else None
        return {"model": model.name, "threshold": threshold,
                "matches": [[{"identity": m.identity, "similarity": m.similarity} for m in ms] for ms in found]}

    return router
