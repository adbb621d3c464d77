"""A stand-in for the Hugging Face Hub on 127.0.0.1, serving model repositories from memory: the few endpoints
``huggingface_hub.snapshot_download`` calls (repository info, file tree, file download), with the Hub's error
codes, so that tests download through ``huggingface_hub`` itself (``HF_ENDPOINT``) into a real cache."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class HubRepos:
    """``repos[ORG/NAME]``: revisions (branch or tag -> commit) and commits (commit -> {file: bytes})."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict]] = {}
        self.requests: list[str] = []

    def add(self, repo: str, folder: Path, revisions: tuple[str, ...] = ("main",)) -> str:
        """Publish the files of ``folder`` as a new commit of ``repo`` named by ``revisions``; returns its hash."""
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        commit = hashlib.sha1(repo.encode() + b"".join(files.values()) + repr(revisions).encode()).hexdigest()
        entry = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
        entry["commits"][commit] = files
        entry["refs"].update(dict.fromkeys(revisions, commit))
        return commit

    def resolve(self, repo: str, revision: str) -> tuple[int, str, str | None]:
        """``(status, error code, commit)``."""
        entry = self.repos.get(repo)
        if entry is None:
            return 404, "RepoNotFound", None
        commit = revision if revision in entry["commits"] else entry["refs"].get(revision)
        return (200, "", commit) if commit else (404, "RevisionNotFound", None)


def _handler(hub: HubRepos) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _error(self, status: int, code: str, head: bool) -> None:
            self._send(status, json.dumps({"error": code}).encode(), {"X-Error-Code": code,
                                                                      "Content-Type": "application/json"}, head)

        def _route(self, head: bool) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                repo, kind, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                if kind == "tree":  # /api/models/ORG/NAME/tree/REV[/PATH]: only the root is listed
                    revision = parts[5]
                status, code, commit = hub.resolve(repo, revision)
                if commit is None:
                    return self._error(status, code, head)
                files = hub.repos[repo]["commits"][commit]
                if kind == "revision":
                    body = {"id": repo, "modelId": repo, "sha": commit, "private": False,
                            "siblings": [{"rfilename": name} for name in files]}  # fmt: skip
                else:
                    body = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                            for name, data in files.items()]  # fmt: skip
                return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)
            if len(parts) >= 5 and parts[2] == "resolve":  # /ORG/NAME/resolve/REV/FILE
                repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                status, code, commit = hub.resolve(repo, revision)
                if commit is None:
                    return self._error(status, code, head)
                data = hub.repos[repo]["commits"][commit].get(name)
                if data is None:
                    return self._error(404, "EntryNotFound", head)
                return self._send(200, data, {"ETag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Repo-Commit": commit,
                                              "Content-Type": "application/octet-stream"}, head)  # fmt: skip
            self._error(404, "RepoNotFound", head)

        def do_GET(self) -> None:  # noqa: N802
            self._route(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._route(head=True)

    return Handler


@contextmanager
def serve_hub(hub: HubRepos) -> Iterator[str]:
    """Serve ``hub`` on 127.0.0.1 (a free port) while inside; yields the endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
