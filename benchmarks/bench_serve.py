"""Serving throughput and latency: ``marigold serve`` with and without request batching, side by side in one run.

Each configuration starts its own server process on loopback; N client threads each send requests back to back
(bounded by ``--requests`` per client and ``--duration`` seconds in all), every request the same photo with its
own seed. Rows print as they finish; with ``--repeats 2`` the second round runs the configurations in reverse
order (machine drift then shows as a difference between rounds, not between configurations).

    python benchmarks/bench_serve.py                          # demo-depth, 1 vs 4 per batch, 1 and 4 clients
    python benchmarks/bench_serve.py --quick                  # tiny random model, a few requests (CI)
    python benchmarks/bench_serve.py --model demo-normals --clients 8 --max-batch 1,8 --requests 20

Columns: requests answered 200 and their throughput, latency percentiles (client side: upload to answer),
and the mean batch size the server reports in ``/metrics``.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from marigold_toolkit.core.machine import cpu_description
from marigold_toolkit.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("model", "max batch", "clients", "ok", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "mean batch")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; NaN for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.5
    """
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class Server:
    def __init__(self, model: str, max_batch: int, max_wait_ms: float, threads: int, clients: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marigold_toolkit.cli.main", "-q", "serve", "--model", model, "--device", "cpu",
             "--port", str(self.port), "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
             "--queue-size", str(max(64, 2 * clients))],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        import httpx

        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def batch_totals(self) -> tuple[float, float]:
        """(requests, model calls) so far, from the server's batch-size histogram."""
        import httpx

        text = httpx.get(self.url + "/metrics", timeout=10).text
        values = {}
        for line in text.splitlines():
            for key in ("marigold_batch_size_sum", "marigold_batch_size_count"):
                if line.startswith(key + "{"):
                    values[key] = values.get(key, 0.0) + float(line.split()[-1])
        return values.get("marigold_batch_size_sum", 0.0), values.get("marigold_batch_size_count", 0.0)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(url: str, image: bytes, clients: int, requests: int, duration: float, fields: dict) -> tuple:
    """``clients`` threads, each sending up to ``requests`` requests until ``duration`` has passed."""
    import httpx

    latencies, errors, lock = [], [0], threading.Lock()
    stop_at = time.perf_counter() + duration

    def client(k: int) -> None:
        with httpx.Client(timeout=600) as http:
            for i in range(requests):
                if time.perf_counter() > stop_at:
                    return
                t0 = time.perf_counter()
                r = http.post(url + "/v1/predict", files={"image": ("photo.jpg", image, "image/jpeg")},
                              data={**fields, "seed": str(1000 * k + i)})
                with lock:
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors[0] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0], time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo-depth", help="model to serve (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="tiny random depth model, 2 clients x 4 requests")
    p.add_argument("--clients", help="comma-separated client counts (default: 1,4; --quick: 2)")
    p.add_argument("--max-batch", help="comma-separated --max-batch values (default: 1,4; --quick: 1,2)")
    p.add_argument("--max-wait-ms", type=float, default=20.0)
    p.add_argument("--requests", type=int, help="requests per client (default: 12; --quick: 4)")
    p.add_argument("--duration", type=float, default=120.0, help="seconds per configuration at most")
    p.add_argument("--steps", type=int, help="denoising steps per request (default: the model's)")
    p.add_argument("--processing-resolution", type=int, help="(default: the model's)")
    p.add_argument("--image", type=Path, default=ROOT / "examples" / "coffee.jpg")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of the server")
    p.add_argument("--repeats", type=int, default=1, help="rounds; even rounds run the configurations reversed")
    args = p.parse_args(argv)

    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if args.quick:
        from marigold_toolkit.testing import build_random_checkpoint

        model = str(build_random_checkpoint(Path(tmp.name) / "tiny-depth", "depth-v1-1", seed=0))
        args.steps, args.processing_resolution = args.steps or 1, args.processing_resolution or 64
    quick = args.quick
    args.clients = args.clients or ("2" if quick else "1,4")
    args.max_batch = args.max_batch or ("1,2" if quick else "1,4")
    args.requests = args.requests or (4 if quick else 12)
    image = args.image.read_bytes()
    if args.quick:
        from PIL import Image

        buf = io.BytesIO()
        Image.open(io.BytesIO(image)).convert("RGB").resize((64, 48)).save(buf, format="JPEG")
        image = buf.getvalue()
    fields = {k: str(v) for k, v in (("steps", args.steps), ("processing_resolution", args.processing_resolution))
              if v is not None}
    configs = [(b, c) for c in (int(x) for x in args.clients.split(",")) for b in
               (int(x) for x in args.max_batch.split(","))]
    label = "tiny random depth" if args.quick else args.model
    print(f"Machine: {cpu_description()}; server torch threads {args.threads}; model {label}; "
          f"settings {fields or 'model defaults'}; {args.requests} requests per client, at most {args.duration:g} s "
          f"per row; max wait {args.max_wait_ms:g} ms\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS), flush=True)
    for round_ in range(args.repeats):
        for max_batch, clients in (configs if round_ % 2 == 0 else configs[::-1]):
            server = Server(model, max_batch, args.max_wait_ms, args.threads, clients)
            try:
                load(server.url, image, 1, 1, 60, fields)  # warm-up: first-call costs stay out of the rows
                before = server.batch_totals()
                lat, errors, wall = load(server.url, image, clients, args.requests, args.duration, fields)
                after = server.batch_totals()
                calls = after[1] - before[1]
                mean_batch = (after[0] - before[0]) / calls if calls else float("nan")
            finally:
                server.stop()
            ms = [x * 1000 for x in lat]
            row = (label, max_batch, clients, len(lat), errors, f"{len(lat) / wall:.2f}",
                   f"{percentile(ms, 0.5):.0f}", f"{percentile(ms, 0.95):.0f}", f"{percentile(ms, 0.99):.0f}",
                   f"{mean_batch:.2f}")
            print("| " + " | ".join(str(c) for c in row) + " |", flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
