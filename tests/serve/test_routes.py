"""The endpoints for every task, through FastAPI's TestClient: /predict answers what `cnnkit predict`
answers for the same file, /explain a PNG, /info the model card, /metrics Prometheus text that
counts what was sent, /health without a token, the page and OpenAPI."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.engine.predictor import load
from tests.serve.conftest import AUTH, TASKS, make_checkpoint

OPTIONS = {"classify": {"top_k": 3}, "detect": {"conf": 0.01}, "segment": {}, "instance": {}}


def _files(png: bytes, *names: str) -> list:
    return [("file", (n, png, "image/png")) for n in names]


@pytest.mark.parametrize("task", list(TASKS))
def test_predict_matches_cnnkit_predict(task, apps, checkpoints, digit_png, canvas_png, tmp_path):
    png = digit_png if task == "classify" else canvas_png
    (tmp_path / "a.png").write_bytes(png)
    ref = load(checkpoints[task], device="cpu").predict([str(tmp_path / "a.png")], **OPTIONS[task])[0]
    query = "&".join(f"{k}={v}" for k, v in OPTIONS[task].items())
    r = apps[task].post(f"/predict?{query}", files=_files(png, "a.png", "b.png"), headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == task and len(body["results"]) == 2 and body["total_ms"] > 0
    raw = apps[task].post(f"/predict?{query}", content=png, headers={**AUTH, "Content-Type": "image/png"})
    assert raw.status_code == 200 and raw.json()["results"][0]["file"] == "upload"
    for got in (body["results"][0], raw.json()["results"][0]):  # both the first image of their request
        assert got["model_ms"] > 0 and got["batch_size"] >= 1
        for key, value in ref.items():
            assert key == "file" or _close(got[key], value), key
    assert [g["file"] for g in body["results"]] == ["a.png", "b.png"]
    if task == "classify":
        assert len(body["results"][0]["top"]) == 3
    if task == "detect":
        assert body["results"][0]["detections"], "conf=0.01 keeps the untrained detector's boxes"


def _close(a, b) -> bool:
    """Equal up to 1e-4 for floats, recursively (batched and single forward passes round differently)."""
    if isinstance(b, float):
        return abs(a - b) <= 1e-4 + 1e-3 * abs(b)
    if isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def test_segment_masks_are_coco_rle_of_the_class_map(apps, canvas_png):
    from pycocotools import mask as mask_utils

    rec = apps["segment"].post("/predict", content=canvas_png, headers=AUTH).json()["results"][0]
    h, w = rec["height"], rec["width"]
    total = np.zeros((h, w), np.int64)
    for m in rec["masks"]:
        rle = {"size": m["segmentation"]["size"], "counts": m["segmentation"]["counts"].encode()}
        binary = mask_utils.decode(rle)
        assert binary.shape == (h, w) and int(binary.sum()) == m["pixels"] == rec["pixels"][m["category"]]
        total += binary
    assert (total == 1).all()  # every pixel in exactly one class's mask
    assert sum(rec["pixels"].values()) == h * w


@pytest.mark.parametrize("task,method", [("classify", "gradcam"), ("classify", "ig"), ("classify", "occlusion"),
                                         ("detect", "gradcam"), ("segment", "gradcam")])
def test_explain_returns_a_png_overlay(task, method, apps, digit_png, canvas_png):
    png = digit_png if task == "classify" else canvas_png
    r = apps[task].post(f"/explain?method={method}&steps=8", content=png, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and img.size[0] > 100  # the overlay figure, not the 8 x 8 input


def test_explain_refuses_unknown_methods_and_several_images(apps, digit_png):
    r = apps["classify"].post("/explain?method=lime", content=digit_png, headers=AUTH)
    assert r.status_code == 422 and "gradcam" in r.json()["error"]
    r = apps["classify"].post("/explain", files=_files(digit_png, "a.png", "b.png"), headers=AUTH)
    assert r.status_code == 400 and "one image" in r.json()["error"]


def test_info_is_the_model_card(apps):
    card = apps["segment"].get("/info", headers=AUTH).json()
    assert card["task"] == "segment" and card["model"] == "unet" and card["classes"][0] == "background"
    assert card["input"]["size"] == [64, 64] and card["input"]["channels"] == 1
    assert card["metrics"] == {"accuracy": 0.25} and card["parameters"] > 0
    assert card["server"]["token_required"] is True and "PNG" in card["server"]["formats"]


def test_metrics_count_requests_batches_and_queue(apps, digit_png):
    from prometheus_client.parser import text_string_to_metric_families

    client = apps["classify"]
    before = _samples(client)
    for _ in range(3):
        assert client.post("/predict", content=digit_png, headers=AUTH).status_code == 200
    client.post("/predict", content=b"", headers=AUTH)
    after = _samples(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("cnnkit_requests_total", endpoint="/predict", status="200") == 3
    assert delta("cnnkit_requests_total", endpoint="/predict", status="400") == 1
    assert delta("cnnkit_images_total") == 3 and delta("cnnkit_batch_size_count") == 3
    assert delta("cnnkit_request_seconds_count", endpoint="/predict") == 4
    assert after[("cnnkit_queue_depth", ())] == 0
    text = client.get("/metrics", headers=AUTH).text
    assert {f.name for f in text_string_to_metric_families(text)} >= {
        "cnnkit_requests", "cnnkit_request_seconds", "cnnkit_batch_size", "cnnkit_queue_depth"}


def _samples(client) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(r.text) for s in f.samples}


def test_health_page_docs_without_token(apps):
    client = apps["classify"]
    assert client.get("/health").json() == {"status": "ok", "queue_depth": 0}
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "https://" not in docs.text  # Swagger UI from the package, no CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs-assets/{asset}" in docs.text and client.get(f"/docs-assets/{asset}").status_code == 200
    assert client.get("/redoc").status_code == 404  # ReDoc would load its script from a CDN: off
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/explain", "/health", "/info", "/metrics"} <= set(spec["paths"])
    assert client.get("/nowhere").json() == {"error": "Not Found"}


@pytest.mark.parametrize("path", ["/", "/health", "/info", "/metrics", "/docs", "/openapi.json", "/static/app.js"])
def test_every_get_route_answers_head_like_get_without_a_body(apps, path):
    """Load balancers and uptime checkers probe with HEAD: the GET answer's status and headers, no body,
    behind the same token."""
    client = apps["classify"]
    for headers in ({}, AUTH):
        got, head = client.get(path, headers=headers), client.head(path, headers=headers)
        assert head.status_code == got.status_code, (path, headers)
        assert head.headers["content-type"] == got.headers["content-type"] and head.content == b""
        if path != "/metrics":  # the counters move between the two requests
            assert head.headers["content-length"] == got.headers["content-length"]
    assert client.head("/info").status_code == 401
    assert client.head("/predict").status_code == 405  # POST routes stay POST only
    spec = client.get("/openapi.json").json()
    assert all("head" not in ops for ops in spec["paths"].values())


def test_page_assets_come_from_the_package_only():
    static = Path(__import__("cnnkit.serve", fromlist=["x"]).__file__).parent / "static"
    names = {p.name for p in static.iterdir()}
    assert {"index.html", "app.js", "style.css"} <= names
    for p in static.iterdir():
        text = p.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, f"{p.name} refers to another origin"


def test_cors_only_with_an_origin(checkpoints, digit_png):
    from fastapi.testclient import TestClient

    from cnnkit.serve import ServeSettings, create_app

    pre = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(checkpoints["classify"], device="cpu")) as plain:
        r = plain.post("/predict", content=digit_png, headers={"Origin": "https://example.org"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    with TestClient(create_app(checkpoints["classify"], ServeSettings(cors="https://example.org"),
                               device="cpu")) as cors:
        r = cors.options("/predict", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://example.org"
        r = cors.options("/predict", headers={**pre, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_an_exported_onnx_file_is_served(checkpoints, digit_png, tmp_path):
    """An `.onnx` source goes through `cnnkit.engine.predictor.load` (onnxruntime): the same answer as its
    checkpoint; occlusion explains it, gradient methods are a one-sentence 422."""
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from cnnkit.engine.checkpoint import load_checkpoint
    from cnnkit.export.onnx import export_onnx
    from cnnkit.serve import create_app

    onnx_path, _ = export_onnx(load_checkpoint(checkpoints["classify"]), tmp_path / "lenet5.onnx",
                               dynamic_batch=True)
    with TestClient(create_app(checkpoints["classify"], device="cpu")) as pt, \
            TestClient(create_app(onnx_path, device="cpu")) as ort:
        files = _files(digit_png, "a.png", "b.png", "c.png")
        want, got = (c.post("/predict", files=files).json()["results"] for c in (pt, ort))
        assert [g["label"] for g in got] == [w["label"] for w in want]
        assert all(_close(g["top"], w["top"]) for g, w in zip(got, want))
        card = ort.get("/info").json()
        assert card["runtime"] == "onnxruntime" and card["explain_methods"] == ["occlusion"]
        r = ort.post("/explain?method=gradcam", content=digit_png)
        assert r.status_code == 422 and "method=occlusion" in r.json()["error"]
        assert ort.post("/explain?method=occlusion", content=digit_png).headers["content-type"] == "image/png"


def test_non_finite_numbers_are_json_null(tmp_path, digit_png):
    """A run whose val metric was NaN (a diverged run) and a NaN score: standard JSON with null, not a 500."""
    import math

    from fastapi.testclient import TestClient

    from cnnkit.serve import ServeSettings, create_app

    path = make_checkpoint(tmp_path / "nan.pt", "classify", "lenet5", [str(i) for i in range(10)], 8,
                           metrics={"accuracy": math.nan})
    with TestClient(create_app(path, ServeSettings(max_wait_ms=1), device="cpu")) as client:
        card = client.get("/info")
        assert card.status_code == 200 and card.json()["metrics"]["accuracy"] is None
        served = client.app.state.served
        record = served.model.task.record
        served.model.task.record = lambda *a, **k: {**record(*a, **k), "score": math.nan}
        try:
            answer = client.post("/predict", files={"file": ("d.png", digit_png, "image/png")})
        finally:
            served.model.task.record = record
        assert answer.status_code == 200 and answer.json()["results"][0]["score"] is None


def test_large_images_decode_in_the_pool_to_the_same_answer(apps, monkeypatch):
    """Small images are decoded on the event loop, larger ones in the thread pool: same record."""
    import cnnkit.serve.routes as routes

    pixels = np.random.default_rng(3).integers(0, 256, (300, 300), dtype=np.uint8)  # 90,000 px: the pool
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    client = apps["classify"]
    assert routes.INLINE_PIXELS < 300 * 300
    pooled = client.post("/predict", content=buf.getvalue(), headers=AUTH).json()["results"][0]
    monkeypatch.setattr(routes, "INLINE_PIXELS", 300 * 300)
    inline = client.post("/predict", content=buf.getvalue(), headers=AUTH).json()["results"][0]
    assert pooled["top"] == inline["top"]
