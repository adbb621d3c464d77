"""The one error type of the service's request path: a status, a short kind and a detail, sent as
``{"error": kind, "detail": detail}``. The kind is also the label of the error counter in ``/metrics``."""

from __future__ import annotations


class ClientError(Exception):
    """A request the service refuses: ``status`` (4xx, or 503 when busy), ``error`` (a short kind, e.g.
    ``too large``) and ``detail`` (one sentence for the caller; never a server path or a traceback), with
    any ``headers`` the answer needs (``WWW-Authenticate``, ``Retry-After``)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def undecodable(detail: str) -> ClientError:
    return ClientError(400, "undecodable", detail)


def too_large(detail: str) -> ClientError:
    return ClientError(413, "too large", detail)


def unsupported(detail: str) -> ClientError:
    return ClientError(415, "unsupported type", detail)


def invalid(detail: str) -> ClientError:
    return ClientError(422, "invalid request", detail)
