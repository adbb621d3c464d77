"""The HTTP protocol the service runs under uvicorn: h11's, with two changes a hostile client shows the need for.

- A connection that never sends a request is closed after the keep-alive timeout, as an idle keep-alive one is
  (uvicorn starts that timer only after a first response, so a silent connection was held forever).
- A request h11 cannot parse (a 1 MB header, ``Content-Length: -1``) is answered in the service's own JSON form,
  ``{"error": "bad_request", "detail": ...}``, like every other refusal, not uvicorn's text/plain.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ServiceProtocol"]


class ServiceProtocol(H11Protocol):
    """uvicorn's h11 protocol with a timeout before the first request and JSON 400s (module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": "bad_request", "detail": msg}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):  # fmt: skip
            self.transport.write(self.conn.send(event))
        self.transport.close()
