"""The ``lcnn serve`` command's options and its run; the options import nothing of the service (the
parser stays light), the run imports uvicorn and the models."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from lcnn.errors import UserError
from lcnn.serve.settings import Settings
from lcnn.tasks.base import count, non_negative, port, positive

__all__ = ["add_arguments", "attach_galleries", "serve"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``lcnn serve``, defaults from :class:`~lcnn.serve.settings.Settings`."""
    d = Settings()
    p.add_argument("checkpoints", nargs="+", metavar="[NAME=]CHECKPOINT",
                   help="checkpoint, run folder or released LightCNN file, served under NAME (default: the name of "
                        "its run folder, or of the file)")  # fmt: skip
    p.add_argument("--model", metavar="ARCH",
                   help="the architecture of the released LightCNN files given, e.g. lightcnn29v2")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=port, default=8000, help="default %(default)s")
    p.add_argument("--api-key-file", metavar="FILE",
                   help="a file holding the API key that /v1/* then requires, as 'Authorization: Bearer KEY'")
    p.add_argument("--max-batch", type=count(1), default=d.max_batch, metavar="N",
                   help="most requests batched for a model (default %(default)s; 1: one at a time)")
    p.add_argument("--max-wait-ms", type=non_negative, default=d.max_wait_ms, metavar="MS",
                   help="how long a request waits for others to batch with (default %(default)g)")
    p.add_argument("--max-upload-mb", type=positive, default=d.max_upload_bytes / 2**20, metavar="MB",
                   help="largest request body (default %(default)g)")
    p.add_argument("--max-audio-seconds", type=positive, default=d.max_audio_seconds, metavar="S",
                   help="longest audio accepted (default %(default)g)")
    p.add_argument("--read-timeout", type=positive, default=d.read_timeout, metavar="S",
                   help="seconds a request's body may take to arrive, else 408 (default %(default)g)")
    p.add_argument("--int8", metavar="DIR", help="run face and classify models in int8 on the CPU, calibrated on "
                                                 "the images in DIR (each stays fp32 where int8 disagrees)")
    p.add_argument("--decode-threads", type=count(1), default=d.decode_threads, metavar="N",
                   help="threads decoding uploads (default %(default)s)")
    p.add_argument("--gallery", action="append", default=[], metavar="NAME=G",
                   help="the gallery (lcnn faces enroll) that face model NAME searches in /v1/identify")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _is_local(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def serve(args: argparse.Namespace) -> int:
    """Load the models (errors are one line, before anything listens), then run uvicorn until interrupted.

    The process keeps the memory its largest batch needed (:func:`lcnn.speed.tune_cpu_allocator`)."""
    try:
        import uvicorn

        from lcnn.serve.app import create_app
        from lcnn.serve.models import load_models
        from lcnn.serve.protocol import ServiceProtocol
    except ImportError as err:
        raise UserError(f"lcnn serve needs the serve extra ({err.name} is missing): "
                        "pip install 'lcnn[serve]'") from None
    key = None
    if args.api_key_file:
        key = Path(args.api_key_file).read_text().strip()
        if not key:
            raise UserError(f"{args.api_key_file}: the API key file is empty")
    try:
        settings = Settings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, api_key=key,
                            max_upload_bytes=round(args.max_upload_mb * 2**20), decode_threads=args.decode_threads,
                            max_audio_seconds=args.max_audio_seconds, read_timeout=args.read_timeout)  # fmt: skip
    except ValueError as err:
        raise UserError(str(err).replace("_", "-")) from None
    from lcnn.speed import tune_cpu_allocator

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(message)s")
    tune_cpu_allocator()  # batches reuse freed memory instead of mapping it afresh: faster, and a flat RSS
    models = load_models(args.checkpoints, args.model, args.int8)
    attach_galleries(models, args.checkpoints, args.gallery)
    for m in models:
        print(f"serving {m.name}: {m.task}, {m.arch}, {m.precision}, threshold {m.threshold}", file=sys.stderr)
    if not _is_local(args.host) and key is None:
        print(f"lcnn: warning: listening on {args.host} without --api-key-file: anyone who reaches this port can "
              f"use the models", file=sys.stderr)  # fmt: skip
    uvicorn.run(create_app(models, settings), host=args.host, port=args.port, log_level=args.log_level,
                timeout_keep_alive=5, server_header=False, http=ServiceProtocol)  # fmt: skip
    return 0


def attach_galleries(models: list, specs: list[str], galleries: list[str]) -> None:
    """Give each face model named in ``galleries`` (``NAME=G``) its gallery, made with that same checkpoint."""
    from lcnn.faces.gallery import Gallery, fingerprint
    from lcnn.tasks import find_checkpoint

    paths = {m.name: spec.split("=", 1)[1] if "=" in spec and not Path(spec).exists() else spec
             for m, spec in zip(models, specs)}  # load_models keeps the order of its specs
    for item in galleries:
        name, _, path = item.partition("=")
        model = next((m for m in models if m.name == name and m.task == "face"), None)
        if model is None or not path:
            raise UserError(f"--gallery {item}: expected NAME=GALLERY with NAME a face model served here")
        gallery = Gallery.load(path)
        made = fingerprint(find_checkpoint(paths[name]), model.module.hparams.model)
        if gallery.model != made or gallery.align != bool(model.module.hparams.get("align", False)):
            raise UserError(f"{path}: enrolled with {gallery.model} (align {gallery.align}), not {name}'s checkpoint "
                            f"({made}, align {bool(model.module.hparams.get('align', False))})")
        model.gallery = gallery
