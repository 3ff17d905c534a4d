"""``marigold serve`` as a real process on loopback: graceful SIGTERM, clients that vanish, a burst past the
queue, and its usage errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")

from marigold_toolkit.testing import free_port  # noqa: E402

from ..cli._helpers import random_image, run_cli  # noqa: E402
from ..io.test_images import _png_claiming_size  # noqa: E402
from .conftest import png_bytes_of  # noqa: E402


class Server:
    """``python -m marigold_toolkit.cli.main serve ...`` in a subprocess."""

    def __init__(self, model: Path, *flags):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marigold_toolkit.cli.main", "serve", "--model", str(model), "--device", "cpu",
             "--port", str(self.port), *map(str, flags)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 90
        while time.time() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read().decode()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not start")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 1024

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, out.decode()


def _predict(url, data: bytes, timeout=60, **fields):
    return httpx.post(url + "/v1/predict", files={"image": ("a.png", data, "image/png")},
                      data={k: str(v) for k, v in fields.items()}, timeout=timeout)


@pytest.fixture(scope="module")
def photo_png() -> bytes:
    return png_bytes_of(random_image(48, 64, seed=3))


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_and_exits_0(depth_ckpt, photo_png):
    server = Server(depth_ckpt, "--max-wait-ms", 1500, "--max-batch", 4)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=_predict(server.url, photo_png, steps=1,
                                                                  processing_resolution=64)))
    t.start()
    time.sleep(0.5)  # the request now waits in the batcher for companions
    server.proc.send_signal(signal.SIGTERM)
    t.join(60)
    rc, log = server.stop()
    assert result["r"].status_code == 200 and result["r"].json()["task"] == "depth"
    assert rc == 0, log
    assert "Traceback" not in log
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz", timeout=2)


@pytest.mark.slow
def test_vanishing_clients_bursts_and_bad_uploads_leave_it_serving(depth_ckpt, photo_png):
    server = Server(depth_ckpt, "--queue-size", 2, "--max-wait-ms", 1000, "--max-batch", 8, "--max-upload-mb", 1)
    try:
        host = ("127.0.0.1", server.port)
        # a client that promises 500 kB and hangs up after 1 kB; one that hangs up before its answer
        with socket.create_connection(host) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      b"Content-Length: 500000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"image\"; "
                      b"filename=\"a.png\"\r\n\r\n" + b"\0" * 1000)
        body = (b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n" + photo_png
                + b"\r\n--b--\r\n")
        with socket.create_connection(host) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.time() + 30  # both vanished requests let go of their places in the queue
        while "marigold_queue_depth 0.0" not in httpx.get(server.url + "/metrics").text:
            assert time.time() < deadline
            time.sleep(0.1)

        # a burst of 6 while each request waits ~1 s: the queue holds 2, the other 4 get 429
        codes = [None] * 6

        def one(i):
            codes[i] = _predict(server.url, photo_png, steps=1, processing_resolution=64).status_code
        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert sorted(codes) == [200, 200, 429, 429, 429, 429]

        base = server.rss_mb()
        junk = os.urandom(800_000)
        for k in range(60):
            r = _predict(server.url, junk if k % 2 else _png_claiming_size(90_000, 90_000))
            assert r.status_code in (400, 413) and "error" in r.json()
        r = httpx.post(server.url + "/v1/predict", content=b"\0" * 2_000_000,
                       headers={"content-type": "multipart/form-data; boundary=b"}, timeout=30)
        assert r.status_code == 413
        assert server.rss_mb() - base < 50
        assert _predict(server.url, photo_png, steps=1, processing_resolution=64).status_code == 200
        metrics = httpx.get(server.url + "/metrics").text
        assert 'marigold_errors_total{code="429"} 4.0' in metrics
    finally:
        rc, log = server.stop()
    assert rc == 0, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("flags, message", [
    (["--model", "/no/such/folder"], "--model /no/such/folder"),
    (["--max-batch", "0"], "--max-batch must be >= 1"),
    (["--api-key-env", "MARIGOLD_TEST_UNSET_KEY"], "MARIGOLD_TEST_UNSET_KEY: the variable is unset"),
    (["--port", "70000"], "--port 70000"),
])
def test_usage_errors_exit_2_with_one_line(capsys, depth_ckpt, flags, message):
    os.environ.pop("MARIGOLD_TEST_UNSET_KEY", None)
    args = ["serve", "--model", str(depth_ckpt), *flags] if flags[0] != "--model" else ["serve", *flags]
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("flags, message", [
    (["--model", "/no/such/folder"], "--model /no/such/folder"),
    (["--examples", "/no/such/folder"], "--examples /no/such/folder: no such folder"),
    (["--port", "0"], "--port 0"),
])
def test_app_usage_errors_exit_2_with_one_line(capsys, depth_ckpt, flags, message):
    pytest.importorskip("gradio")
    args = ["app", *flags] if flags[0] == "--model" else ["app", "--model", str(depth_ckpt), *flags]
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
