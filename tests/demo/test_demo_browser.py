"""The demo page for real: a Gradio server on localhost driven by a headless Chromium (Playwright)."""
import re
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import geocorr
from geocorr.demo.app import PointMatcher, build_app, example_pairs

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium (CI installs it, see .ci/run)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
REPORT = re.compile(r"#(\d) \((\d+), (\d+)\) -> \(([\d.]+), ([\d.]+)\)  score ([\d.-]+)"
                    r"  twin -> \(([\d.]+), ([\d.]+)\)")
TIMEOUT_MS = 90_000  # every wait is bounded; the machine may be busy


@pytest.fixture(scope="module")
def model(pretrained_vits14):
    return geocorr.load("dinov2", backbone=str(pretrained_vits14), image_size=224)


@pytest.fixture(scope="module")
def server(model):
    app = build_app(model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    page.wait_for_selector("#source input[type=file]", state="attached")
    yield page
    page.close()


def upload(page, which: str, path) -> None:
    page.set_input_files(f"#{which} input[type=file]", str(path))


def click_pixel(page, x: float, y: float) -> None:
    """Click the source image at pixel (x, y), wherever and however large the page shows it."""
    img = page.locator("#source img").first
    img.wait_for(state="visible")
    nw, nh = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    box = img.bounding_box()
    scale = min(1.0, box["width"] / nw, box["height"] / nh)  # object-fit: scale-down, centred
    dx, dy = (box["width"] - nw * scale) / 2, (box["height"] - nh * scale) / 2
    img.click(position={"x": dx + (x + 0.5) * scale, "y": dy + (y + 0.5) * scale})


def wait_report(page, lines: int, previous: str = "") -> str:
    page.wait_for_function(
        "([n, prev]) => { const v = document.querySelector('#report textarea').value;"
        " return v !== prev && (v.match(/^#\\d/gm) || []).length === n; }", arg=[lines, previous])
    return page.input_value("#report textarea")


def output_src(page) -> str:
    img = page.locator("#target_view img").first
    img.wait_for(state="visible")
    page.wait_for_function("e => e.complete && e.naturalWidth > 0", arg=img.element_handle())
    return img.get_attribute("src")


def test_click_shows_the_models_match(page, model):
    source_path, target_path = example_pairs()[0]  # the two cars
    source = np.asarray(Image.open(source_path).convert("RGB"))
    target = np.asarray(Image.open(target_path).convert("RGB"))
    upload(page, "source", source_path)
    upload(page, "target", target_path)
    page.locator("#target img").first.wait_for(state="visible")
    assert page.locator("#target_view img").count() == 0  # nothing shown before a click

    click_pixel(page, 75, 100)
    text = wait_report(page, 1)
    first = output_src(page)
    _, qx, qy, x, y, score, tx, ty = REPORT.search(text).groups()
    assert abs(int(qx) - 75) <= 1 and abs(int(qy) - 100) <= 1
    want = PointMatcher(model)(source, target, [(float(qx), float(qy))], twin=True)
    np.testing.assert_allclose([float(x), float(y)], want.points[0], atol=0.051)
    np.testing.assert_allclose(float(score), want.scores[0], atol=0.0006)
    np.testing.assert_allclose([float(tx), float(ty)], want.twins[0], atol=0.051)

    click_pixel(page, 220, 120)  # a new single point: the picture and the report change
    text = wait_report(page, 1, previous=text)
    assert output_src(page) != first
    assert abs(int(REPORT.search(text).group(2)) - 220) <= 1

    page.locator("#several input[type=checkbox]").check()
    click_pixel(page, 150, 60)
    text = wait_report(page, 2, previous=text)
    assert [m.group(1) for m in REPORT.finditer(text)] == ["1", "2"]


def test_bad_upload_is_reported_and_the_server_keeps_serving(page, tmp_path):
    junk = tmp_path / "holiday.jpg"
    junk.write_text("this is not an image")
    upload(page, "source", junk)
    toast = page.locator(".toast-body").filter(has_text="is not an image file")
    toast.first.wait_for(state="visible")
    assert "holiday.jpg" in toast.first.inner_text()

    source_path, target_path = example_pairs()[1]
    upload(page, "source", source_path)
    upload(page, "target", target_path)
    page.locator("#target img").first.wait_for(state="visible")
    click_pixel(page, 150, 90)
    assert REPORT.search(wait_report(page, 1))
