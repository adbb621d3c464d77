"""Load test and hostile requests of ``lcnn serve`` on localhost.

    python benchmarks/bench_serve.py --data-dir ../shared/data/minispoof        # 1, 8, 32 clients, 60 s each
    python benchmarks/bench_serve.py --duration 5 --clients 1,2                 # a quick look
    python benchmarks/bench_serve.py --clients 32,32,32 --duration 30           # does RSS level off?

Starts ``lcnn serve`` twice (subprocesses, one at a time): with its default batching and with
``--max-batch 1``. Against each, 1, 8 and 32 concurrent clients post MiniSpoof eval files (FLAC) to
``/v1/spoof`` for ``--duration`` seconds (at most ``--max-requests`` each): requests/s, latency percentiles,
errors, the mean model batch (from ``/metrics``). Then the batched server gets the hostile requests, and is
checked healthy. Server RSS is read at start and after each row, and temporary files left in its own ``TMPDIR`` (named
or open) are counted. Prints Markdown tables.

The models are untrained unless ``--checkpoint`` is given: an lcnn_lstm on the MiniSpoof recipe's features
(spectrogram to 4 kHz, silence trimmed) and a LightCNN-9 face model; the cost of a request does not depend on
the weights. The clients run on the same machine as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from PIL import Image

KEY = "bench-key"
READ_TIMEOUT = 5.0  # the server's --read-timeout here (default 30 s), so that stalled bodies end in the run


def make_checkpoints(root: Path) -> tuple[Path, Path]:
    """Untrained spoof (MiniSpoof recipe's front-end, lcnn_lstm) and face (LightCNN-9) checkpoints."""
    import torch

    from lcnn.audio import build_frontend, frontend_config
    from lcnn.tasks.face.module import FaceModule
    from lcnn.tasks.spoof.module import SpoofModule

    torch.manual_seed(0)
    spec = frontend_config("spec", f_max=4000.0, trim_silence=True)
    paths = []
    for name, task, module in (
        ("spoof", "spoof", SpoofModule(model="lcnn_lstm", n_features=build_frontend(spec).n_features, frontend=spec)),
        ("face", "face", FaceModule(model="lightcnn9", num_classes=2)),
    ):
        module.threshold.fill_(0.0 if task == "spoof" else 0.5)
        torch.save({"lcnn_task": task, "hyper_parameters": dict(module.hparams), "lcnn_config": {"task": task},
                    "state_dict": module.state_dict()}, root / f"{name}.ckpt")  # fmt: skip
        paths.append(root / f"{name}.ckpt")
    return paths[0], paths[1]


class Server:
    """``lcnn serve`` in a subprocess with a ``TMPDIR`` of its own."""

    def __init__(self, models: list[str], extra: list[str], work: Path) -> None:
        self.tmp = Path(tempfile.mkdtemp(dir=work, prefix="tmpdir-"))
        (key := work / "key").write_text(KEY)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TMPDIR": str(self.tmp)}
        command = [sys.executable, "-m", "lcnn", "serve", *models, "--port", str(self.port), "--api-key-file",
                   str(key), "--read-timeout", str(READ_TIMEOUT), "--log-level", "error", *extra]  # fmt: skip
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"lcnn serve exited: {self.process.stderr.read()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise SystemExit("lcnn serve did not get ready in 300 s")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024

    def temp_files(self) -> int:
        """Files in its TMPDIR, and files it holds open there (deleted ones included)."""
        held = 0
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            try:
                held += os.readlink(fd).startswith(str(self.tmp))
            except OSError:
                pass
        return len(list(self.tmp.iterdir())) + held

    def batch_stats(self) -> tuple[float, float]:
        """``(items, batches)`` the spoof model has run, from /metrics."""
        text = httpx.get(f"{self.url}/metrics").text
        values = {line.split("{")[0]: float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith(("lcnn_batch_size_sum", "lcnn_batch_size_count")) and 'model="spoof"' in line}
        return values.get("lcnn_batch_size_sum", 0.0), values.get("lcnn_batch_size_count", 0.0)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def _load(url: str, files: list[bytes], clients: int, duration: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    end = time.perf_counter() + duration

    async def client(http: httpx.AsyncClient, rng: random.Random) -> None:
        nonlocal sent
        while time.perf_counter() < end and sent < max_requests:
            sent += 1
            started = time.perf_counter()
            try:
                answer = await http.post("/v1/spoof", files={"audio": ("a.flac", rng.choice(files))})
                kind = None if answer.status_code == 200 else str(answer.status_code)
            except httpx.HTTPError as err:
                kind = type(err).__name__
            latencies.append(time.perf_counter() - started)
            if kind:
                errors[kind] = errors.get(kind, 0) + 1

    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(http, random.Random(i)) for i in range(clients)))
    elapsed = time.perf_counter() - started
    q = np.percentile(latencies, [50, 95, 99]) * 1000 if latencies else [float("nan")] * 3
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50": q[0], "p95": q[1], "p99": q[2],
            "errors": errors}  # fmt: skip


def load_tests(args: argparse.Namespace, models: list[str], files: list[bytes], work: Path) -> list[dict]:
    rows = []
    batched = ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    for label, extra in (("batched", batched), ("--max-batch 1", ["--max-batch", "1"])):
        server = Server(models, extra, work)
        try:
            asyncio.run(_load(server.url, files, 1, 1.0, 20))  # warm-up, not counted
            rss_start = server.rss_mb()
            for clients in args.clients:
                items, batches = server.batch_stats()
                result = asyncio.run(_load(server.url, files, clients, args.duration, args.max_requests))
                items2, batches2 = server.batch_stats()
                result.update(server=label, clients=clients, batch=(items2 - items) / max(batches2 - batches, 1),
                              rss=server.rss_mb())  # fmt: skip
                rows.append(result)
                print(f"{label}, {clients} clients: {result['rps']:.1f} requests/s", file=sys.stderr)
            rows[-1].update(rss_start=rss_start, rss_end=server.rss_mb(), temp_files=server.temp_files())
        finally:
            server.stop()
    return rows


# ---------------------------------------------------------------------------------------------- hostile


def _status(answer: bytes) -> str:
    parts = answer.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 and answer.startswith(b"HTTP/") else f"no answer ({answer[:20]!r})"


def _headers(path: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\n{extra}\r\n").encode()  # fmt: skip


PART = b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.flac"\r\n\r\n'


def _announced(port: int, size: int) -> tuple[str, str]:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(_headers("/v1/spoof", f"Content-Length: {size}\r\n") + PART)
        answer = s.recv(4096)
    return _status(answer), f"answered in {time.perf_counter() - started:.3f} s, body never read"


def _streamed(port: int, size: int) -> tuple[str, str]:
    """A chunked body of ``size`` bytes, sent until the server answers."""
    chunk = 2**20
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(_headers("/v1/spoof", "Transfer-Encoding: chunked\r\n") + b"%x\r\n%s\r\n" % (len(PART), PART))
        try:
            while sent < size and not select.select([s], [], [], 0)[0]:
                s.sendall(b"%x\r\n" % chunk + bytes(chunk) + b"\r\n")
                sent += chunk
        except OSError:  # the server closed the connection after answering
            pass
        answer = s.recv(4096)
    return _status(answer), f"answered after {sent / 2**20:.0f} MB of {size / 2**30:.0f} GB were sent"


def _post(url: str, files: dict, headers: dict | None = None, endpoint: str = "/v1/spoof") -> tuple[str, str]:
    started = time.perf_counter()
    answer = httpx.post(f"{url}{endpoint}", files=files, headers=headers or {"Authorization": f"Bearer {KEY}"},
                        timeout=60)  # fmt: skip
    body = answer.json()
    return str(answer.status_code), f"{body.get('error')}: {body.get('detail')} ({time.perf_counter() - started:.2f} s)"


def _png_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(bytes(10**6))) + chunk(b"IEND", b"")


def _held(server: Server, holders: int, stalled: int, good: bytes) -> tuple[str, str]:
    """``holders`` connections sending half a request line and ``stalled`` bodies that stop coming, while a
    normal request is timed."""
    sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(holders + stalled)]
    try:
        for s in sockets[:holders]:
            s.sendall(b"POST /v1/spoof HTTP/1.1\r\nHost: x\r\nContent-Le")
        for s in sockets[holders:]:
            s.sendall(_headers("/v1/spoof", "Content-Length: 100000\r\n") + PART + bytes(100))
        started = time.perf_counter()
        normal = httpx.post(f"{server.url}/v1/spoof", files={"audio": ("a.flac", good)},
                            headers={"Authorization": f"Bearer {KEY}"}, timeout=60)  # fmt: skip
        latency = time.perf_counter() - started
        statuses = []
        for s in sockets[holders:]:
            s.settimeout(READ_TIMEOUT + 10)
            statuses.append(_status(s.recv(4096)))
        stalled_end = time.perf_counter() - started
    finally:
        for s in sockets:
            s.close()
    codes = ", ".join(sorted(set(statuses)))
    return (f"{normal.status_code} (normal request), {codes} (stalled bodies)",
            f"{holders} half-sent requests held open: a normal request answered in {latency:.2f} s; "
            f"{stalled} stalled bodies ended after {stalled_end:.1f} s (--read-timeout {READ_TIMEOUT:g})")


def hostile(server: Server, good: bytes) -> list[tuple[str, str, str]]:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", bytes(200 * 2**20))
    silence = io.BytesIO()
    sf.write(silence, np.zeros(16000 * 3600, np.int16), 16000, format="FLAC")
    small = io.BytesIO()
    Image.new("L", (128, 128)).save(small, "PNG")
    faces = {"image1": ("a.png", _png_claiming(60000, 60000)), "image2": ("b.png", small.getvalue())}
    cases = [
        ("2 GB body, Content-Length announced", *_announced(server.port, 2 * 2**30)),
        ("2 GB body, chunked (no length)", *_streamed(server.port, 2 * 2**30)),
        (f"zip bomb renamed .flac ({len(zipped.getvalue()) // 1024} kB, 200 MB inflated)",
         *_post(server.url, {"audio": ("bomb.flac", zipped.getvalue())})),
        (f"1 h of silence as FLAC ({len(silence.getvalue()) // 1024} kB)",
         *_post(server.url, {"audio": ("long.flac", silence.getvalue())})),
        ("truncated FLAC (first half)", *_post(server.url, {"audio": ("cut.flac", good[: len(good) // 2])})),
        ("PNG claiming 60000x60000 pixels", *_post(server.url, faces, endpoint="/v1/verify")),
        ("wrong API key", *_post(server.url, {"audio": ("a.flac", good)}, {"Authorization": "Bearer nope"})),
        ("missing field (file sent as 'file')", *_post(server.url, {"file": ("a.flac", good)})),
        ("slow clients holding connections", *_held(server, 200, 20, good)),
    ]  # fmt: skip
    health = httpx.get(f"{server.url}/healthz").status_code
    after = _post(server.url, {"audio": ("a.flac", good)})[0]
    cases.append(("afterwards: /healthz, then a normal request", f"{health}, {after}",
                  f"server RSS {server.rss_mb():.0f} MB, temporary files left: {server.temp_files()}"))
    return cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("LCNN_MINISPOOF"), help="MiniSpoof (default $LCNN_MINISPOOF)")
    p.add_argument("--checkpoint", help="a trained spoof checkpoint (default: an untrained lcnn_lstm)")
    p.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated (default 1,8,32)")
    p.add_argument("--duration", type=float, default=60, help="seconds per client count (default 60)")
    p.add_argument("--max-requests", type=int, default=100_000, help="most requests per client count")
    p.add_argument("--max-batch", type=int, default=16, help="the batched server's --max-batch (default 16)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="the batched server's --max-wait-ms (default 5)")
    p.add_argument("--files", type=int, default=200, help="MiniSpoof eval files to post (default 200)")
    args = p.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    if not args.data_dir:
        raise SystemExit("give --data-dir (the MiniSpoof folder holding LA/) or set $LCNN_MINISPOOF")
    flacs = sorted(Path(args.data_dir, "LA", "ASVspoof2019_LA_eval", "flac").glob("*.flac"))[: args.files]
    if not flacs:
        raise SystemExit(f"{args.data_dir}: no LA/ASVspoof2019_LA_eval/flac/*.flac")
    files = [f.read_bytes() for f in flacs]
    from lcnn.benchmark import machine_report

    print(machine_report(models=[("lcnn_lstm", None), ("lightcnn9", None)]) + "\n", flush=True)
    seconds = [sf.info(io.BytesIO(f)).duration for f in files]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spoof, face = make_checkpoints(work)
        models = [f"spoof={args.checkpoint or spoof}", f"face={face}"]
        rows = load_tests(args, models, files, work)
        server = Server(models, ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)], work)
        try:
            cases = hostile(server, files[0])
        finally:
            server.stop()

    print(f"{len(files)} MiniSpoof eval files, {statistics.mean(seconds):.2f} s on average; {os.cpu_count()} CPUs; "
          f"{args.duration:g} s per row\n")
    print("| server | clients | requests | requests/s | p50 ms | p95 ms | p99 ms | errors | mean batch | RSS after MB "
          "|")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
        print(f"| {r['server']} | {r['clients']} | {r['requests']} | {r['rps']:.1f} | {r['p50']:.0f} | "
              f"{r['p95']:.0f} | {r['p99']:.0f} | {errors} | {r['batch']:.1f} | {r['rss']:.0f} |")
    print("\n| server | RSS at start MB | RSS at end MB | temporary files left |\n|---|---:|---:|---:|")
    for r in (r for r in rows if "rss_start" in r):
        print(f"| {r['server']} | {r['rss_start']:.0f} | {r['rss_end']:.0f} | {r['temp_files']} |")
    most = max(args.clients)
    rps = {(r["server"], r["clients"]): r["rps"] for r in rows}
    print(f"\nAt {most} clients: {rps['batched', most] / rps['--max-batch 1', most]:.2f}x the --max-batch 1 "
          f"throughput at {most} clients, {rps['batched', most] / rps['--max-batch 1', min(args.clients)]:.2f}x "
          f"one client one at a time (--max-batch 1, {min(args.clients)} client).")
    print("\n| hostile request | status | what happened |\n|---|---|---|")
    for name, status, note in cases:
        print(f"| {name} | {status} | {note} |")


if __name__ == "__main__":
    main()
