"""`cnnkit serve`: flag errors are one line, and a real uvicorn server lets an in-flight request
finish when it gets SIGTERM (graceful shutdown), then exits."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from cnnkit.cli import main
from tests.serve.conftest import TOKEN


@pytest.mark.parametrize("flags,words", [(["--max-batch", "0"], "--max-batch must be at least 1"),
                                         (["--timeout-s", "-1"], "--timeout-s must be positive")])
def test_bad_flags_are_one_line(checkpoints, capsys, flags, words):
    assert main(["serve", str(checkpoints["classify"]), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnkit: error:") and words in err and "\n" not in err


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(source, *flags: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`python -m cnnkit serve` on a free local port; returns once /health answers (180 s at most: a
    busy shared core makes the torch import alone take 15 s)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cnnkit", "serve", str(source), "--port", str(port),
                             "--threads", "1", "--device", "cpu", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not answer /health within 180 s")


def test_sigterm_lets_the_in_flight_request_finish(checkpoints, digit_png):
    proc, url = start_server(checkpoints["classify"], env={"CNNKIT_TOKEN": TOKEN})
    try:
        assert httpx.get(f"{url}/info").status_code == 401  # the token came from CNNKIT_TOKEN
        answer: dict = {}

        def slow_request():  # occlusion with a 1-pixel window: ~1,000 forward passes, seconds
            r = httpx.post(f"{url}/explain?method=occlusion&window=1&stride=1", content=digit_png,
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            answer.update(status=r.status_code, type=r.headers.get("content-type"), at=time.perf_counter())

        worker = threading.Thread(target=slow_request)
        worker.start()
        deadline = time.time() + 60
        while _in_flight(url) < 2 and time.time() < deadline:  # the slow request, and this /metrics one
            time.sleep(0.05)
        assert _in_flight(url) >= 2, "the slow request never reached the server"
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        worker.join(60)
        # uvicorn re-raises the signal once it has shut down cleanly: the exit is by SIGTERM, not a crash
        assert proc.wait(60) in (0, -signal.SIGTERM)
        assert answer["status"] == 200 and answer["type"] == "image/png"
        assert answer["at"] > sent, "the request finished after SIGTERM arrived"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def _in_flight(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "cnnkit_requests_in_flight")


def test_workers_each_serve_the_model_and_keep_the_token(checkpoints, digit_png):
    """`--workers 2`: two uvicorn worker processes, each with its own model; the token reaches them
    through the environment, never a file."""
    proc, url = start_server(checkpoints["classify"], "--workers", "2", "--token", TOKEN)
    try:
        assert httpx.post(f"{url}/predict", content=digit_png).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        labels = {httpx.post(f"{url}/predict", content=digit_png, headers=auth).json()["results"][0]["label"]
                  for _ in range(8)}
        assert len(labels) == 1  # every worker gives the same answer
        deadline = time.time() + 120
        while len(_children(proc.pid)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        assert len(_children(proc.pid)) >= 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()


def _children(pid: int) -> list[int]:
    """uvicorn worker processes of `pid`: its children started by multiprocessing's spawn_main
    (Linux /proc; multiprocessing's resource tracker, also a child, is not counted)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    spawned = b"spawn_main" in f.read()
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid and spawned:
                kids.append(int(entry))
    return kids
