"""``lcnn pretrained get``: released archives in their exact layouts (the 2021 baselines' zip holding
``trained_network.pt``; NII's tarball with ``<variant>/<run>/__pretrained/trained_network.pt``), served on
127.0.0.1: downloaded once, resumed with an HTTP Range request after a dropped connection, checked, extracted
and converted once."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import SHARED

from lcnn import released
from lcnn.cli import main
from lcnn.errors import UserError

FIXTURE = SHARED / "fixtures" / "nii_cm"


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    requests: list[tuple[str, str | None]]
    drop_first: set[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        server: _Server = self.server  # type: ignore[assignment]
        server.requests.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if self.path in server.drop_first:  # the connection drops half-way, once
            server.drop_first.discard(self.path)
            self.wfile.write(data[start : start + (len(data) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.drop_first = {}, [], set()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _release(monkeypatch: pytest.MonkeyPatch, server: _Server, name: str, path: str, data: bytes,
             md5: bool = True) -> None:  # fmt: skip
    server.files[path] = data
    entry = dataclasses.replace(released.RELEASED[name], source=f"http://127.0.0.1:{server.server_port}{path}",
                                archive_md5=hashlib.md5(data).hexdigest() if md5 else None)  # fmt: skip
    monkeypatch.setitem(released.RELEASED, name, entry)


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_baseline_zip_is_downloaded_converted_and_cached(server, monkeypatch, tmp_path: Path, capsys) -> None:
    if not FIXTURE.is_dir():
        pytest.skip(f"the nii_cm fixture is not at {FIXTURE}")
    weights = (FIXTURE / "asvspoof2021-la.pt").read_bytes()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("trained_network.pt", weights)
    _release(monkeypatch, server, "asvspoof2021-la", "/asvspoof2021/pre_trained_LA_LFCC-LCNN.zip", archive.getvalue(),
             md5=False)  # fmt: skip
    monkeypatch.setenv("LCNN_CACHE", str(tmp_path / "cache"))
    assert main(["pretrained", "get", "asvspoof2021-la"]) == 0
    ckpt = Path(capsys.readouterr().out.strip())
    assert ckpt == tmp_path / "cache" / "released" / "asvspoof2021-la.ckpt"
    record = torch.load(ckpt, weights_only=True)["lcnn_source"]
    assert record["sha256"] == hashlib.sha256(weights).hexdigest()
    assert "pre_trained_LA_LFCC-LCNN.zip" in record["source"]
    assert released.fetch("asvspoof2021-la") == ckpt and len(server.requests) == 1  # found in the cache


def test_study_tarball_resumes_a_dropped_download(server, monkeypatch, tmp_path: Path) -> None:
    if not FIXTURE.is_dir():
        pytest.skip(f"the nii_cm fixture is not at {FIXTURE}")
    weights = (FIXTURE / "lfcc-lcnn-lstmsum-oc.pt").read_bytes()
    other = (FIXTURE / "spec2-lcnn-lstmsum-am.pt").read_bytes()
    data = _tarball({"lfcc-lcnn-lstmsum-oc/01/__pretrained/trained_network.pt": other,
                     "lfcc-lcnn-lstmsum-oc/03/__pretrained/trained_network.pt": weights,
                     "spec2-lcnn-lstmsum-am/03/__pretrained/trained_network.pt": other})  # fmt: skip
    path = "/record/6456692/files/project-03-asvspoof-mega-pretrained.tar.gz"
    _release(monkeypatch, server, "nii-lfcc-lcnn-lstmsum-oc-03", path, data)
    server.drop_first.add(path)
    with pytest.raises(UserError, match="download failed .* run the command again to resume"):
        released.fetch("nii-lfcc-lcnn-lstmsum-oc-03", tmp_path)
    ckpt = released.fetch("nii-lfcc-lcnn-lstmsum-oc-03", tmp_path)
    assert server.requests[1] == (path, f"bytes={len(data) // 2}-")  # resumed where it stopped
    assert (tmp_path / "archives" / "project-03-asvspoof-mega-pretrained.tar.gz").read_bytes() == data
    assert torch.load(ckpt, weights_only=True)["lcnn_source"]["sha256"] == hashlib.sha256(weights).hexdigest()


def test_a_corrupt_download_is_refused_and_removed(server, monkeypatch, tmp_path: Path) -> None:
    path = "/files/project-03-asvspoof-mega-pretrained.tar.gz"
    _release(monkeypatch, server, "nii-lfb-lcnn-fixed-am-01", path, b"not the release")
    entry = dataclasses.replace(released.RELEASED["nii-lfb-lcnn-fixed-am-01"], archive_md5="0" * 32)
    monkeypatch.setitem(released.RELEASED, "nii-lfb-lcnn-fixed-am-01", entry)
    with pytest.raises(UserError, match="expected 0{32}; removed it"):
        released.fetch("nii-lfb-lcnn-fixed-am-01", tmp_path)
    assert not list((tmp_path / "archives").iterdir())
    with pytest.raises(UserError, match="unknown released model 'nii-lfb-lcnn-fixed-am-1'; did you mean"):
        released.fetch("nii-lfb-lcnn-fixed-am-1", tmp_path)


def test_an_archive_given_by_hand_is_checked_and_its_only_weights_taken(monkeypatch, tmp_path: Path) -> None:
    if not FIXTURE.is_dir():
        pytest.skip(f"the nii_cm fixture is not at {FIXTURE}")
    weights = (FIXTURE / "asvspoof2021-pa.pt").read_bytes()
    archive = tmp_path / "pre_trained_PA_LFCC-LCNN.zip"
    with zipfile.ZipFile(archive, "w") as z:  # the name the challenge's download script looks for
        z.writestr("pa_trained_network.pt", weights)
    ckpt = released.fetch("asvspoof2021-pa", tmp_path / "cache", file=archive)
    assert torch.load(ckpt, weights_only=True)["lcnn_source"]["sha256"] == hashlib.sha256(weights).hexdigest()
    garbage = tmp_path / "project-03-asvspoof-mega-pretrained.tar.gz"
    garbage.write_bytes(b"not an archive")
    entry = dataclasses.replace(released.RELEASED["nii-lfb-lcnn-fixed-am-01"], archive_md5=None)
    monkeypatch.setitem(released.RELEASED, "nii-lfb-lcnn-fixed-am-01", entry)
    with pytest.raises(UserError, match="not a zip or tar archive"):
        released.fetch("nii-lfb-lcnn-fixed-am-01", tmp_path / "cache", file=garbage)
    monkeypatch.setitem(released.RELEASED, "nii-lfb-lcnn-fixed-am-01", dataclasses.replace(entry, archive_md5="0" * 32))
    with pytest.raises(UserError, match="not the release's 0{32}"):
        released.fetch("nii-lfb-lcnn-fixed-am-01", tmp_path / "cache", file=garbage)
    assert garbage.read_bytes() == b"not an archive"  # the user's file is left as it was
