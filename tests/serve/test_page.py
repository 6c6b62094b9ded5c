"""The page in a real browser: Debian's chromium, headless, driven by Playwright (never `playwright
install`: the system browser is used). A picked digit shows the class /predict gives; a detection
model's boxes are listed and drawn; a segmentation mask gets its legend; the token form, Grad-CAM
toggle, keyboard reach and a phone-sized window are checked. Screenshots are kept in tmp_path.

The page's Content-Security-Policy forbids eval, so waits use locators (and a Python poll over
`page.evaluate`, which runs outside the page's CSP), never `wait_for_function`."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import TOKEN
from tests.serve.test_command import free_port

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (.ci/run installs it: apt-get install "
                                       "chromium)")


class LiveServer:
    """uvicorn in a thread of this process on a free 127.0.0.1 port."""

    def __init__(self, source, **settings):
        import uvicorn

        from cnnkit.serve import ServeSettings, create_app

        port = free_port()
        app = create_app(source, ServeSettings(**settings), device="cpu")
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _ready(page) -> None:
    page.locator("#status", has_text="Ready").wait_for()


def _poll(page, expression: str, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while not page.evaluate(expression):
        assert time.time() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def test_classify_page_token_class_gradcam_keyboard_phone(browser, checkpoints, digit_png, tmp_path):
    img = _write(tmp_path, "digit.png", digit_png)
    with LiveServer(checkpoints["classify"], token=TOKEN) as live:
        api = httpx.post(f"{live.url}/predict", content=digit_png, headers={"Authorization": f"Bearer {TOKEN}"})
        expected = api.json()["results"][0]["label"]
        page = browser.new_page(viewport={"width": 375, "height": 740})
        page.goto(live.url)
        page.wait_for_selector("#token-form:not([hidden])")
        page.fill("#token", TOKEN)
        page.keyboard.press("Enter")
        _ready(page)
        assert "lenet5" in page.text_content("#card-body") and "accuracy" in page.text_content("#card-body")
        for _ in range(8):  # the file picker is reachable with Tab alone
            if page.evaluate("document.activeElement.id") == "files":
                break
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "files"
        page.set_input_files("#files", [str(img), str(img)])
        page.locator(".result .label").nth(1).wait_for()
        assert page.text_content(".result .label") == expected
        assert page.locator(".result .top li").count() == 2 * 5
        page.check("#gradcam")
        _poll(page, "Array.from(document.querySelectorAll('img.cam')).filter("
                    "i => i.complete && i.naturalWidth > 100).length === 2")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than a phone
        page.screenshot(path=str(tmp_path / "classify_phone.png"), full_page=True)
    assert (tmp_path / "classify_phone.png").stat().st_size > 5000


def test_detection_boxes_and_segmentation_legend(browser, checkpoints, canvas_png, tmp_path):
    img = _write(tmp_path, "canvas.png", canvas_png)
    with LiveServer(checkpoints["detect"]) as live:
        dets = httpx.post(f"{live.url}/predict?conf=0.05", content=canvas_png).json()["results"][0]["detections"]
        assert dets, "an untrained tinydet still scores some boxes above 0.05"
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(live.url)
        _ready(page)
        assert page.is_visible("#conf-opt") and not page.is_visible("#topk-opt")
        page.fill("#conf", "0.05")
        page.set_input_files("#files", str(img))
        page.wait_for_selector(".result .det")
        items = page.locator(".result .det").all_text_contents()
        assert len(items) == len(dets) and items[0].startswith(dets[0]["category"])
        page.screenshot(path=str(tmp_path / "detect.png"), full_page=True)
    with LiveServer(checkpoints["segment"]) as live:
        masks = httpx.post(f"{live.url}/predict", content=canvas_png).json()["results"][0]["masks"]
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(live.url)
        _ready(page)
        page.set_input_files("#files", str(img))
        page.wait_for_selector(".result .legend li")
        assert page.locator(".result .legend li").count() == len(masks)
        page.screenshot(path=str(tmp_path / "segment.png"), full_page=True)
    assert (tmp_path / "detect.png").stat().st_size > 5000 and (tmp_path / "segment.png").stat().st_size > 5000


def test_api_docs_render_offline(browser, checkpoints):
    """/docs draws every endpoint with no request leaving 127.0.0.1 (a CDN script would be refused)."""
    with LiveServer(checkpoints["classify"]) as live:
        page = browser.new_page()
        elsewhere: list[str] = []
        page.route("**/*", lambda route: (elsewhere.append(route.request.url), route.abort())
                   if not route.request.url.startswith(live.url) else route.continue_())
        page.goto(f"{live.url}/docs")
        page.locator(".opblock-summary-path", has_text="/predict").first.wait_for(timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        page.close()
    assert elsewhere == []
    assert {"/predict", "/explain", "/health", "/info", "/metrics"} <= {p.strip() for p in paths}
