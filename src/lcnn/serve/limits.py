"""Request limits enforced while the body streams in, and the API key.

:class:`BodyLimit` is an ASGI middleware: a request whose ``Content-Length`` is over the limit is answered
413 before a byte of its body is read; one without (chunked) is counted as it arrives and stopped with 413
at the first chunk over the limit; a body that takes longer than ``read_timeout`` seconds to arrive is
stopped with 408 (a slow client cannot hold a request, and its spooled upload, open for ever).
"""

from __future__ import annotations

import asyncio
import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lcnn.serve.errors import ClientError, too_large

__all__ = ["BodyLimit", "check_api_key", "error_response"]


async def error_response(send: Send, error: ClientError) -> None:
    """Send ``error`` as the JSON body every client error has (for middleware, below the app's handlers)."""
    body = json.dumps({"error": error.error, "detail": error.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """At most ``max_bytes`` of request body, arriving within ``read_timeout`` seconds.

    Chunks over the limit raise :class:`~lcnn.serve.errors.ClientError` (413, 408) from ``receive``, which
    the app's handler turns into the JSON answer; ``on_refused(error)`` is told of the ones this middleware
    answers itself (a ``Content-Length`` over the limit).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float, on_refused=None) -> None:
        self.app, self.max_bytes, self.read_timeout, self.on_refused = app, max_bytes, read_timeout, on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            error = too_large(f"the body is {declared.decode(errors='replace')} bytes; the limit is "
                              f"{self.max_bytes} bytes")  # fmt: skip
            if self.on_refused is not None:
                self.on_refused(error)
            await error_response(send, error)  # the body is never read; the server closes the connection
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        received, complete = 0, False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body: waiting for the disconnect, no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                raise ClientError(408, "timeout", f"the body did not arrive within {self.read_timeout:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise too_large(f"the body is over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


def check_api_key(authorization: str | None, key: str) -> None:
    """Accept ``Authorization: Bearer KEY``; the comparison takes the same time whatever the key given."""
    scheme, _, given = (authorization or "").partition(" ")
    if not hmac.compare_digest(given.strip().encode(), key.encode()) or scheme.lower() != "bearer":
        raise ClientError(401, "unauthorized", "give the API key as 'Authorization: Bearer KEY'",
                          {"WWW-Authenticate": "Bearer"})
