"""Load on `cnnkit serve`: concurrent clients against a local server, micro-batching on vs off.

For each `--max-batch` value (default 32 = micro-batching, then 1 = one image per forward pass) the
script starts `python -m cnnkit serve` on 127.0.0.1 (never another address), waits for /health,
warms up, then runs `--clients` concurrent clients for `--seconds`: each posts one 28x28 PNG to
/predict, waits for the answer, and posts again, until the time is up (a bounded loop: no request
is sent after the deadline, and each has a 30 s timeout). Every request is accounted for: 200,
503 (backpressure), other 4xx/5xx, or "lost" (no HTTP answer: connection error or timeout). The
server is then stopped with SIGTERM. The model is an untrained ResNet-20 for 1 x 28 x 28 inputs
(Fashion-MNIST's shape; the weights do not change the cost) unless `--ckpt` names one.

    python bench/serve_load.py --threads 2 --rounds 3        # the README's run: both cores, 3 rounds
    taskset -c 1 python bench/serve_load.py                  # server and clients share core 1
    python bench/serve_load.py --modes 32,8,1 --seconds 10 --clients 16 --client httpx

Results: JSON (per mode: requests by status, throughput, p50/p99 latency of the 200s, mean batch
size from the server's /metrics) in bench/results/serve_load.json and a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_checkpoint(path: Path) -> Path:
    """An untrained ResNet-20 classifier checkpoint for 1 x 28 x 28 images, 10 classes."""
    import torch

    from cnnkit.config import Config
    from cnnkit.data.base import DatasetInfo
    from cnnkit.engine.checkpoint import save_checkpoint
    from cnnkit.engine.trainer import checkpoint_meta
    from cnnkit.tasks import get_task

    cfg = Config()
    cfg.task, cfg.model.name, cfg.data.image_size = "classify", "resnet20", 28
    info = DatasetInfo("classify", [str(i) for i in range(10)], 1, 28, name="fashion-mnist-shaped")
    task = get_task("classify")
    cfg.fill_defaults(task.defaults(cfg, info))
    task.setup(cfg, info)
    torch.manual_seed(0)
    model = task.build_model(cfg, info)
    return save_checkpoint(path, model.state_dict(), checkpoint_meta(task, cfg, info, 0, {}))


def png_28() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: Path, max_batch: int, args) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "cnnkit", "serve", str(ckpt), "--host", "127.0.0.1", "--port", str(port),
           "--max-batch", str(max_batch), "--max-wait-ms", str(args.max_wait_ms), "--max-queue", str(args.max_queue),
           "--threads", str(args.threads), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.25)
    proc.kill()
    raise SystemExit("server did not answer /health within 300 s")


async def raw_client(url: str, image: bytes, end: float, statuses: dict, latencies: list) -> None:
    """One keep-alive HTTP/1.1 connection posting `image` until `end`. Hand-written over asyncio
    streams because the clients share the server's core: httpx's per-request CPU is taken from the
    server (the README table has both; `--client httpx` runs the library client)."""
    host, port = url.rsplit("//", 1)[1].split(":")
    head = (f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(image)}\r\n\r\n").encode()
    reader = writer = None
    while time.perf_counter() < end:
        start = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(head + image)
            status = int((await asyncio.wait_for(reader.readline(), 30)).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            key = str(status)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, IndexError, ValueError) as e:
            key, writer = f"lost:{type(e).__name__}", None
        statuses[key] = statuses.get(key, 0) + 1
        if key == "200":
            latencies.append(time.perf_counter() - start)
        elif key == "503":
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def load(url: str, image: bytes, clients: int, seconds: float, kind: str = "raw") -> dict:
    import httpx

    statuses: dict[str, int] = {}
    latencies: list[float] = []
    if kind == "raw":
        t0 = time.perf_counter()
        await asyncio.gather(*(raw_client(url, image, t0 + seconds, statuses, latencies) for _ in range(clients)))
        return summary(statuses, latencies, time.perf_counter() - t0)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:
        end = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < end:
                start = time.perf_counter()
                try:
                    r = await http.post("/predict", content=image, headers={"Content-Type": "image/png"})
                    key = str(r.status_code)
                except httpx.HTTPError as e:
                    key = f"lost:{type(e).__name__}"
                statuses[key] = statuses.get(key, 0) + 1
                if key == "200":
                    latencies.append(time.perf_counter() - start)
                elif key == "503":
                    await asyncio.sleep(0.01)  # honour backpressure a little, as a client would

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return summary(statuses, latencies, elapsed)


def summary(statuses: dict, latencies: list, elapsed: float) -> dict:
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {"statuses": statuses, "requests": sum(statuses.values()), "ok": statuses.get("200", 0),
            "elapsed_s": round(elapsed, 2), "throughput_rps": round(statuses.get("200", 0) / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1)}


def run_mode(ckpt: Path, max_batch: int, image: bytes, args) -> dict:
    proc, url = start_server(ckpt, max_batch, args)
    try:
        asyncio.run(load(url, image, args.clients, args.warmup_s, args.client))  # warm-up, not counted
        before = mean_batch_counts(url)
        result = asyncio.run(load(url, image, args.clients, args.seconds, args.client))
        after = mean_batch_counts(url)
        n = after[1] - before[1]
        result["mean_batch"] = round((after[0] - before[0]) / n, 2) if n else None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            result_code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            result_code = None
    bad = {k: v for k, v in result["statuses"].items() if k not in ("200", "503")}
    result.update(max_batch=max_batch, max_wait_ms=args.max_wait_ms, server_exit=result_code,
                  other_than_200_503=bad)
    return result


def mean_batch_counts(url: str) -> tuple[float, float]:
    import httpx

    from prometheus_client.parser import text_string_to_metric_families

    values = {s.name: s.value for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
              for s in f.samples}
    return values["cnnkit_batch_size_sum"], values["cnnkit_batch_size_count"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", help="checkpoint to serve (default: an untrained ResNet-20 for 28x28)")
    p.add_argument("--modes", default="32,1", help="--max-batch values, comma-separated (default: 32,1)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--client", choices=("raw", "httpx"), default="raw",
                   help="raw: keep-alive connections over asyncio streams (cheap); httpx: the library client")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-queue", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    p.add_argument("--rounds", type=int, default=1, help="run the modes this many times, alternating; "
                                                         "the ratio is of the median throughputs")
    p.add_argument("--out", default=str(HERE / "results" / "serve_load.json"))
    args = p.parse_args()
    image = png_28()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.ckpt) if args.ckpt else make_checkpoint(Path(tmp) / "resnet20-28.pt")
        order = [int(m) for m in args.modes.split(",")]
        # Rounds alternate the modes (32, 1, 32, 1, ...): a shared machine's slow minutes hit both alike.
        modes = [run_mode(ckpt, m, image, args) for _ in range(args.rounds) for m in order]
    medians = {m: float(np.median([r["throughput_rps"] for r in modes if r["max_batch"] == m])) for m in order}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    out = {"model": "resnet20 (untrained) 1x28x28" if not args.ckpt else args.ckpt, "clients": args.clients,
           "client": args.client,
           "seconds": args.seconds, "rounds": args.rounds, "threads": args.threads,
           "median_throughput_rps": {str(m): v for m, v in medians.items()}, "cpus": cpus, "cpu_count": os.cpu_count(), "machine": platform.processor()
           or platform.machine(), "python": platform.python_version(), "modes": modes}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"| --max-batch | requests | 200 | 503 | other | images/s | p50 ms | p99 ms | mean batch |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in modes:
        other = sum(m["other_than_200_503"].values())
        print(f"| {m['max_batch']} | {m['requests']} | {m['ok']} | {m['statuses'].get('503', 0)} | {other} | "
              f"{m['throughput_rps']} | {m['p50_ms']} | {m['p99_ms']} | {m['mean_batch']} |")
    if len(order) >= 2 and medians[order[-1]]:
        print(f"\nthroughput ratio {order[0]} vs {order[-1]} (medians of {args.rounds} round(s)): "
              f"{medians[order[0]] / medians[order[-1]]:.2f}x  (cpus {cpus}, torch threads {args.threads})")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
