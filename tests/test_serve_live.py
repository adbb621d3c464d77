"""``lcnn serve`` as users run it: the command in a subprocess on a free port, reached over real sockets
(hostile connections) and by headless Chromium through Selenium (the page). The browser test skips, saying
why, where Chromium, chromedriver or Selenium is missing (Debian: apt-get install chromium chromium-driver).

``LCNN_SERVE_SCREENSHOT=FILE`` saves a screenshot of the page with its results."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")

import httpx  # noqa: E402
from serving import audio_bytes, image_bytes, make_checkpoints  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
READ_TIMEOUT = 1.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """``lcnn serve`` with a spoof and a face model; yields its base URL."""
    ckpt = make_checkpoints(tmp_path_factory.mktemp("live"))
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    command = [sys.executable, "-m", "lcnn", "serve", f"voice={ckpt['lstm']}", f"faces={ckpt['face']}",
               "--port", str(port), "--read-timeout", str(READ_TIMEOUT), "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if process.poll() is not None:
                pytest.fail(f"lcnn serve exited: {process.stdout.read()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _raw(port: int, head: bytes, body: bytes = b"", wait: float = 10.0) -> tuple[int, float]:
    """Send ``head`` (and ``body``) on a fresh socket; ``(status of the answer, seconds it took)``."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head + body)
        answer = s.recv(65536)
    return int(answer.split(b" ", 2)[1]), time.perf_counter() - started


def _head(path: str, length: int, boundary: str = "b") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()  # fmt: skip


def test_hostile_connections_leave_the_server_healthy(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    status, seconds = _raw(port, _head("/v1/spoof", 2 * 10**9), b"--b\r\n")  # a 2 GB body, announced
    assert status == 413 and seconds < 2
    part = b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
    status, seconds = _raw(port, _head("/v1/spoof", 10**6), part + bytes(1000))  # then nothing more comes
    assert status == 408 and READ_TIMEOUT <= seconds < READ_TIMEOUT + 3
    # 100 connections that send half a request line each and hold on: the others are still served at once
    holders = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    try:
        for s in holders:
            s.sendall(b"POST /v1/spoof HTTP/1.1\r\nHost: x\r\nContent-Le")
        started = time.perf_counter()
        answer = httpx.post(f"{server}/v1/spoof", files={"audio": ("a.flac", audio_bytes(1.0, "FLAC"))}, timeout=10)
        assert answer.status_code == 200 and time.perf_counter() - started < 5
    finally:
        for s in holders:
            s.close()
    assert httpx.get(f"{server}/healthz").status_code == 200


def _answer(port: int, data: bytes, wait: float = 10.0) -> tuple[bytes, float]:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer, time.perf_counter() - started


def test_unparsable_requests_get_json_and_silent_connections_are_closed(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    # A header still growing past h11's 16 KB (the first 64 KB of a 1 MB one: the server answers and closes before
    # the rest could be sent), and a negative length.
    for request in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2**16,
                    b"POST /v1/spoof HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"):  # fmt: skip
        answer, _ = _answer(port, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower(), head
        assert json.loads(body)["error"] == "bad_request"
    answer, seconds = _answer(port, b"")  # connects, says nothing: closed after the keep-alive timeout (5 s)
    assert answer == b"" and 4 <= seconds < 9
    assert httpx.get(f"{server}/healthz").status_code == 200


def _browser(tmp_path: Path, width: int, height: int):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no headless browser: apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium'}", f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _wait(driver, element: str, done=lambda value: value not in ("", "pending"), seconds: float = 60) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds).until(
        lambda d: done(d.find_element(By.ID, element).get_attribute("data-decision") or ""))
    return driver.find_element(By.ID, element).get_attribute("data-decision")


def test_the_page_shows_the_decision(server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    voice, face1, face2 = tmp_path / "caller.wav", tmp_path / "face-1.png", tmp_path / "face-2.png"
    voice.write_bytes(audio_bytes(10.0, "WAV"))
    face1.write_bytes(image_bytes(seed=1))
    face2.write_bytes(image_bytes(seed=2))
    expected = httpx.post(f"{server}/v1/spoof", files={"audio": ("c.wav", voice.read_bytes())}, timeout=30).json()

    driver = _browser(tmp_path, 900, 1400)
    try:
        driver.get(server)
        WebDriverWait(driver, 30).until(lambda d: "Serving" in d.find_element(By.ID, "status").text)
        assert "voice (spoof, lcnn_lstm, fp32)" in driver.find_element(By.ID, "status").text
        reached = []  # a keyboard user reaches the audio picker with Tab
        for _ in range(6):
            ActionChains(driver).send_keys(Keys.TAB).perform()
            reached.append(driver.switch_to.active_element.get_attribute("id"))
        assert "spoof-file" in reached

        driver.find_element(By.ID, "spoof-file").send_keys(str(voice))
        decision = _wait(driver, "spoof-decision")
        assert decision == expected["decision"]
        text = driver.find_element(By.ID, "spoof-decision").text
        assert text == {"bonafide": "Bona fide", "spoof": "Spoof"}[decision]
        assert f"score {expected['score']:.3f}" in driver.find_element(By.ID, "spoof-score").text
        assert expected["segments"] is None and not driver.find_element(By.ID, "spoof-segments").is_displayed()

        driver.find_element(By.ID, "face-1").send_keys(str(face1))
        driver.find_element(By.ID, "face-2").send_keys(str(face2))
        driver.find_element(By.CSS_SELECTOR, "#face-form button").click()
        assert _wait(driver, "face-decision") in ("same", "different")
        assert "Cosine similarity" in driver.find_element(By.ID, "face-score").text
        if os.environ.get("LCNN_SERVE_SCREENSHOT"):  # the whole page
            driver.set_window_size(900, driver.execute_script("return document.documentElement.scrollHeight") + 140)
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(os.environ["LCNN_SERVE_SCREENSHOT"])

        driver.set_window_size(390, 844)  # a phone: nothing wider than the screen
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        driver.quit()
