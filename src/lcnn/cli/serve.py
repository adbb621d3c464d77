"""``lcnn serve``: trained checkpoints behind an HTTP API and a web page (the ``serve`` extra)."""

from __future__ import annotations

import argparse

from lcnn.cli.parsing import command


def add(commands, task: str | None) -> None:
    """``lcnn serve``."""
    from lcnn.serve.command import add_arguments

    p = command(
        commands, "serve", task,
        help="serve checkpoints over HTTP: a JSON API and a web page",
        description="Serve trained checkpoints (spoof, face, classify) or released LightCNN files over HTTP: "
        "POST /v1/spoof, /v1/verify, /v1/embed, /v1/classify; GET /v1/models, /healthz, /readyz, /metrics; "
        "the page at /. Requests that arrive together are batched. Needs the serve extra: "
        "pip install 'lcnn[serve]'.",
    )  # fmt: skip
    add_arguments(p)
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from lcnn.serve.command import serve

    return serve(args)
