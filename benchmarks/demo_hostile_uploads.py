"""Hostile uploads to ``geocorr demo`` over HTTP (issue 17): nothing executed, nothing silently wrong, memory bounded.

A real ``geocorr demo`` server (a child process, on 127.0.0.1 and a free port) runs DINOv2 with a tiny
random backbone saved as a transformers folder (so this process can build the very same model) at
56 px. Every hostile file is uploaded through Gradio's own HTTP API (``/gradio_api/upload``, then
``/gradio_api/queue/join`` + the ``queue/data`` event stream, exactly what the page sends) and used
three ways: the page's upload check (``check_source``), a click with the file as the source (a good
target), and a click with the file as the target (a good source). Then:

* a file that must be refused: all three calls end in an error shown in the page (``gr.Error``), one
  line naming the upload; accepted instead = a silent wrong result;
* a file that must be accepted (16-bit, RGBA, EXIF rotation, animated GIF, 49 Mpx …): the
  page's picture of the source (``source_view``, lossy WebP) has the expected size and pixels
  (decoded here independently of ``geocorr.images``) and the reported match and score equal those of
  the same model run here on the expected pixels; anything else = a silent wrong result;
* after every file: the server is still alive, its peak RSS (``VmHWM``) and no pickle marker file.

Measured 2026-11-30 (2 shared CPU cores, OMP_NUM_THREADS=1, gradio 6.31, Pillow 12.3):

    file (uploaded as)                              expect        result     s  peak MiB  check (pic.: picture)
    PNG bomb 30000x30000 1-bit, 110 kB (bomb.png)   refuse        refused  3.3       555  A
    PNG bomb 7072x7072, cap + 1 row (just_over.png) refuse        refused  0.0       555  A
    JPEG 10000x10000, 100 Mpx (big.jpg)             refuse        refused  0.1       556  A
    JPEG 7000x7000, 49 Mpx, under the cap           accept        accepted 61.9     2330  picture 0.7, match=
    truncated PNG, half (cut.png)                   refuse        refused  0.0      2330  B
    truncated JPEG, half (cut.jpg)                  refuse        refused  0.0      2330  B
    PNG with corrupt IDAT (corrupt.png)             refuse        refused  0.0      2330  B
    text file named .png (notes.png)                refuse        refused  0.0      2330  B
    empty file (empty.png)                          refuse        refused  0.0      2330  B
    pickle, __reduce__ -> touch marker (model.png)  refuse        refused  0.0      2330  B, no marker
    pickle, __reduce__ -> touch marker (model.jpg)  refuse        refused  0.0      2330  B, no marker
    SVG with <script> (logo.svg)                    refuse        refused  0.0      2330  B
    HTML named .png (page.png)                      refuse        refused  0.0      2330  B
    1x1 PNG (dot.png)                               refuse-click  refused  0.0      2330  C (UNCLEAR)
    20000x14 PNG strip (strip.png)                  either        accepted 0.2      2330  pic. 1024x1 px (WebP), match=
    PNG with a 100 MB zTXt bomb (ztxt.png)          either        refused  0.0      2330  B
    16-bit grey PNG (depth16.png)                   accept        accepted 0.1      2330  pic. 1.2 (wrong 141.7), match=
    RGBA PNG, half transparent (alpha.png)          accept        accepted 0.1      2330  pic. 4.5 (wrong 132.5), match=
    JPEG with EXIF orientation 6 (phone.jpg)        accept        accepted 0.1      2330  pic. 6.3 (wrong 76.9), match=
    animated GIF, 3 frames (anim.gif)               accept        accepted 0.1      2330  pic. 8.4 (wrong 78.5), match=
    JPEG named .png (photo.png)                     accept        accepted 0.1      2330  pic. 5.9, match=

    server peak RSS after a normal click: 553 MiB. picture: mean |difference| of the page's source
    picture from the expected pixels (from the plausible wrong decode); match=: the reported match,
    score and twin equal the same model's on the expected pixels (both as source and as target).
    A: "Target: 'bomb.png' is 30000×30000 = 900,000,000 pixels; the demo takes images up to 50,000,000
       pixels (50 Mpx): downscale it and upload again."
    B: "Target: 'cut.png' is not an image file that can be read; upload a JPEG, PNG or WebP image."
    (A and B: the target call's message, each naming its own file; the source calls say "Source: …".)
    C: the upload check passes; the click: "images[0]: the image is 1×1 pixels, smaller than 14 pixels on
       a side (one patch of the backbone); it holds nothing to match: use a larger image or upscale it
       first" (names neither the upload nor Source/Target).

    faults (hostile files, 3 calls each): 21      clear refusals: 13      unclear refusals: 1 (1x1)
    accepted and correct: 7      refused though they must be accepted: 0      files executed: 0
    silent wrong results: 0      server crashes: 0      server peak RSS: 2330 MiB (the 49-Mpx JPEG)

    Before the demo drew its pictures at most 1024 px on a side (a fix this campaign prompted), the
    49-Mpx JPEG took 81 s and the server peaked at 8588 MiB (the heat map drawn at 7000×7000 in
    float64). What is left of the 2330 MiB and the 62 s is matching a 49-Mpx target at full
    resolution (``matching.upsampled_argmax``: ~27 s and ~1.8 GB per match on one core).

    python benchmarks/demo_hostile_uploads.py [--keep DIR]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import httpx  # gradio's own HTTP client
import numpy as np
from PIL import Image

IMAGE_SIZE = 56
CLICK = (5.0, 4.0)  # the clicked source pixel (x, y): valid in every accepted image
REPORT = re.compile(r"#1 \((\d+), (\d+)\) -> \(([\d.-]+), ([\d.-]+)\)  score ([\d.-]+)"
                    r"(?:  twin -> \(([\d.-]+), ([\d.-]+)\))?")
FN_CLICK, FN_CHECK_SOURCE, SOURCE_ID = "on_click", "check_source", "source"


# --------------------------------------------------------------------------------------------- files
def png_bytes(width: int, height: int, bit_depth: int, colour: int, rows: bytes | None = None,
              extra_chunks: tuple[tuple[bytes, bytes], ...] = (), idat_zeros: int | None = None) -> bytes:
    """A PNG written chunk by chunk: any declared size, with all-zero pixel data compressed on the fly
    (a 30000² 1-bit bomb is 110 kB), or ``rows`` (filtered scanlines) as given."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    out = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0))]
    out += [chunk(kind, data) for kind, data in extra_chunks]
    if rows is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        n = idat_zeros if idat_zeros is not None else height * (1 + (width * channels * bit_depth + 7) // 8)
        comp, parts, block = zlib.compressobj(9), [], bytes(1 << 20)
        for start in range(0, n, len(block)):
            parts.append(comp.compress(block[: min(len(block), n - start)]))
        rows_z = b"".join(parts) + comp.flush()
    else:
        rows_z = zlib.compress(rows, 9)
    out += [chunk(b"IDAT", rows_z), chunk(b"IEND", b"")]
    return b"".join(out)


class Marker:
    """A pickle whose loading runs ``touch <marker>``: the proof that a data file executed code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def pattern(h: int, w: int, seed: int) -> np.ndarray:
    """(h, w, 3) uint8 blocky colours (smooth enough to survive WebP and JPEG, asymmetric)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(blocks.repeat(8, 0).repeat(8, 1)[:h, :w])


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@dataclass
class Case:
    name: str          # what the file is
    filename: str      # the name it is uploaded under
    data: bytes
    expect: str        # "refuse" | "accept"
    want: np.ndarray | None = None  # accept: the (H, W, 3) uint8 RGB the page must show
    wrong: np.ndarray | None = None  # accept: what a plausible wrong decode would show
    marker: Path | None = None
    rows: dict = field(default_factory=dict)


def make_cases(work: Path) -> list[Case]:
    cases = []
    add = cases.append
    # Decompression bombs and oversized images: refused from the header.
    add(Case("PNG bomb 30000x30000 1-bit (110 kB)", "bomb.png", png_bytes(30000, 30000, 1, 0), "refuse"))
    add(Case("PNG bomb 7072x7072 (cap + 1 row)", "just_over.png", png_bytes(7072, 7072, 1, 0), "refuse"))
    add(Case("JPEG 10000x10000 (100 Mpx)", "big.jpg", save(Image.new("RGB", (10000, 10000), (90, 120, 200)),
                                                          "JPEG", quality=50), "refuse"))
    big = Image.new("RGB", (7000, 7000), (90, 120, 200))
    big.paste(Image.fromarray(pattern(64, 64, 7)), (0, 0))
    big_bytes = save(big, "JPEG", quality=95)
    add(Case("JPEG 7000x7000 (49 Mpx, under the cap)", "large.jpg", big_bytes, "accept",
             np.asarray(Image.open(io.BytesIO(big_bytes)).convert("RGB"))))
    del big
    # Broken files and non-images.
    good = pattern(150, 200, 1)
    png = save(Image.fromarray(good), "PNG")
    jpg = save(Image.fromarray(good), "JPEG", quality=95)
    add(Case("truncated PNG (half)", "cut.png", png[: len(png) // 2], "refuse"))
    add(Case("truncated JPEG (half)", "cut.jpg", jpg[: len(jpg) // 2], "refuse"))
    add(Case("PNG with corrupt IDAT (zlib)", "corrupt.png", png[:60] + bytes(40) + png[100:], "refuse"))
    add(Case("text file named .png", "notes.png", b"this is not an image\n" * 20, "refuse"))
    add(Case("empty file", "empty.png", b"", "refuse"))
    for ext in ("png", "jpg"):
        marker = work / f"EXECUTED-{ext}"
        add(Case(f"pickle (__reduce__ -> touch marker) .{ext}", f"model.{ext}", pickle.dumps(Marker(marker)),
                 "refuse", marker=marker))
    add(Case("SVG with <script>", "logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" '
             b'onload="alert(1)"><script>alert(document.cookie)</script><rect width="64" height="64"/></svg>',
             "refuse"))
    add(Case("HTML named .png", "page.png", b"<!doctype html><html><body><script>alert(1)</script></body></html>",
             "refuse"))
    add(Case("1x1 PNG", "dot.png", save(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"), "refuse-click"))
    strip = pattern(14, 20000, 3)  # one patch high; wider than WebP's 16383 px (the page's picture format)
    add(Case("20000x14 PNG strip (0.28 Mpx)", "strip.png", save(Image.fromarray(strip), "PNG"), "either", strip))
    # zTXt chunk that inflates to 100 MB (Pillow caps text chunks): refused, or read without the text.
    ztxt = b"Comment\x00\x00" + zlib.compress(bytes(100_000_000), 9)
    rows = b"".join(b"\x00" + good[y].tobytes() for y in range(good.shape[0]))
    add(Case("PNG with a 100 MB zTXt bomb", "ztxt.png", png_bytes(200, 150, 8, 2, rows=rows,
                                                                   extra_chunks=((b"zTXt", ztxt),)), "either", good))
    # Images that must be accepted and converted right.
    sixteen = (np.arange(120 * 160, dtype=np.uint32).reshape(120, 160) * 3).astype(np.uint16)
    add(Case("16-bit grey PNG", "depth16.png", save(Image.fromarray(sixteen), "PNG"), "accept",
             np.repeat(np.round(sixteen / 257.0).astype(np.uint8)[..., None], 3, axis=2),
             np.repeat(np.minimum(sixteen, 255).astype(np.uint8)[..., None], 3, axis=2)))  # clipped
    rgba = np.zeros((150, 200, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = good, 255
    rgba[:, 100:, :3], rgba[:, 100:, 3] = 0, 0  # right half transparent black: white in the page
    want_rgba = good.copy()
    want_rgba[:, 100:] = 255
    add(Case("RGBA PNG (half transparent)", "alpha.png", save(Image.fromarray(rgba, "RGBA"), "PNG"), "accept",
             want_rgba, np.ascontiguousarray(rgba[..., :3])))  # alpha dropped
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    rotated = save(Image.fromarray(good), "JPEG", quality=95, exif=exif.tobytes())
    upright = np.asarray(Image.open(io.BytesIO(rotated)).convert("RGB"))
    add(Case("JPEG with EXIF orientation 6", "phone.jpg", rotated, "accept", np.rot90(upright, k=-1).copy(),
             np.rot90(upright, k=1).copy()))  # turned the wrong way
    frames = [Image.fromarray(pattern(150, 200, 10 + k)).quantize(64) for k in range(3)]
    gif = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    add(Case("animated GIF (3 frames)", "anim.gif", gif, "accept", np.asarray(frames[0].convert("RGB")),
             np.asarray(frames[-1].convert("RGB"))))  # the last frame
    add(Case("JPEG named .png", "photo.png", jpg, "accept", np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB"))))
    return cases


# ----------------------------------------------------------------------------------------- the server
class Demo:
    """``geocorr demo`` in a child process, driven through Gradio's HTTP API."""

    def __init__(self, backbone: Path, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "geocorr", "demo", "--method", "dinov2", "--backbone", str(backbone),
               "--image-size", str(IMAGE_SIZE), "--port", str(self.port)]
        self.log = log.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}/gradio_api"
        self.http = httpx.Client(timeout=600)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the demo exited with {self.proc.returncode}: see {log}")
            try:
                config = self.http.get(f"http://127.0.0.1:{self.port}/config").json()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the demo did not start in 300 s")
        self.fn = {d["api_name"]: i for i, d in enumerate(config["dependencies"])}
        self.ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}

    def status(self, key: str) -> int:
        """A VmHWM / VmRSS line of the server's /proc/<pid>/status, in MiB."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) // 1024

    def alive(self) -> bool:
        try:
            return self.proc.poll() is None and self.http.get(f"http://127.0.0.1:{self.port}/config").status_code == 200
        except httpx.HTTPError:
            return False

    def upload(self, filename: str, data: bytes) -> dict:
        r = self.http.post(f"{self.base}/upload", files=[("files", (filename, data))])
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": filename, "meta": {"_type": "gradio.FileData"}}

    def call(self, api_name: str, data: list, event_data: dict | None = None) -> dict:
        """One event, as the page sends it: (success, output data or error message)."""
        session = uuid.uuid4().hex[:12]
        body = {"data": data, "fn_index": self.fn[api_name], "trigger_id": self.ids[SOURCE_ID],
                "session_hash": session, "event_data": event_data}
        self.http.post(f"{self.base}/queue/join", json=body).raise_for_status()
        with self.http.stream("GET", f"{self.base}/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "process_completed":
                        out = msg.get("output") or {}
                        return {"ok": bool(msg.get("success")), "data": out.get("data"), "error": out.get("error")}
        return {"ok": False, "data": None, "error": "<the event stream ended without a result>"}

    def fetch_image(self, payload: dict) -> np.ndarray:
        r = self.http.get(payload["url"])
        r.raise_for_status()
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ---------------------------------------------------------------------------------------------- checks
def clear_error(error: str | None, filename: str) -> bool:
    """One line, names the upload, no traceback or bare exception name."""
    return bool(error) and "\n" not in error.strip() and filename in error and "Traceback" not in error


def parse(text: str) -> np.ndarray:
    m = REPORT.search(text or "")
    if m is None:
        raise ValueError(f"no match line in the report {text!r}")
    return np.array([float(v) for v in m.groups()[2:] if v is not None])


def picture_ok(shown: np.ndarray, want: np.ndarray, wrong: np.ndarray | None) -> tuple[bool, float, float]:
    """The page's source picture (at most VIEW_MAX_SIDE on a side, a disc at CLICK, sent as lossy WebP)
    against the expected pixels and against the plausible wrong decode of the file (alpha dropped, no
    rotation, last frame, 16-bit clipped): (close to the right one and far from the wrong one, errors)."""
    from geocorr.demo.app import VIEW_MAX_SIDE

    def error(ref: np.ndarray | None) -> float:
        if ref is None:
            return float("inf")
        h, w = ref.shape[:2]
        scale = min(1.0, VIEW_MAX_SIDE / max(h, w))
        if scale < 1:
            ref = np.asarray(Image.fromarray(ref).resize((round(w * scale), round(h * scale)), Image.Resampling.BOX))
        if shown.shape != ref.shape:
            return float("inf")
        radius = max(4, max(ref.shape[:2]) // 60) + 3
        yy, xx = np.ogrid[: ref.shape[0], : ref.shape[1]]
        away = (xx - (CLICK[0] + 0.5) * scale) ** 2 + (yy - (CLICK[1] + 0.5) * scale) ** 2 > radius**2
        return float(np.abs(shown.astype(np.int16) - ref.astype(np.int16))[away].mean())

    right, other = error(want), error(wrong)
    if min(shown.shape[:2]) < 8:  # a strip drawn 1 px high: WebP's 2×2 colour blocks blur it; the match decides
        return np.isfinite(right), right, other
    return right < 10.0 and right < other / 3, right, other  # WebP (quality 80) of these pictures: < 9


def run_case(demo: Demo, case: Case, reference, good: np.ndarray, good_payload: dict) -> None:
    from geocorr.demo.app import PointMatcher

    payload = demo.upload(case.filename, case.data)
    click = {"index": list(CLICK), "value": None}
    calls = {
        "check": demo.call(FN_CHECK_SOURCE, [payload]),
        "as source": demo.call(FN_CLICK, [payload, good_payload, None, False, True], click),
        "as target": demo.call(FN_CLICK, [good_payload, payload, None, False, True], click),
    }
    accepted = [name for name, c in calls.items() if c["ok"]]
    refused = [name for name, c in calls.items() if not c["ok"]]
    notes, wrong = [], False
    case.rows["errors"] = [calls[n]["error"] for n in refused]
    unclear = [n for n in refused if not clear_error(calls[n]["error"], case.filename)]
    expect = case.expect
    if expect == "either":
        expect = "accept" if len(accepted) == 3 else "refuse"
    if expect == "refuse-click":  # the upload check cannot know the backbone's patch: refused at the click
        expect, accepted = "refuse", [n for n in accepted if n != "check"]
        notes.append("upload check passes; the click: " + (calls["as source"]["error"] or ""))
    if expect == "refuse":
        if accepted:
            wrong, notes = True, notes + [f"accepted ({', '.join(accepted)})"]
        outcome = "refused" if not accepted else "ACCEPTED"
    else:
        outcome = "accepted" if not refused else "REFUSED"
        if calls["as source"]["ok"]:
            ok, err, err_wrong = picture_ok(demo.fetch_image(calls["as source"]["data"][1]), case.want, case.wrong)
            notes.append(f"picture |diff| {err:.1f} (wrong decode: {err_wrong:.1f})")
            want = PointMatcher(reference)(case.want, good, [CLICK], twin=True)
            got = parse(calls["as source"]["data"][3])
            exp = np.array([*want.points[0], want.scores[0], *want.twins[0]])
            same = got.shape == exp.shape and np.allclose(got, exp, atol=0.051)
            if not (ok and same):
                wrong = True
                notes.append(f"match {got.tolist()} != {np.round(exp, 3).tolist()}" if not same else "picture wrong")
        if calls["as target"]["ok"]:
            want = PointMatcher(reference)(good, case.want, [CLICK], twin=True)
            got = parse(calls["as target"]["data"][3])
            exp = np.array([*want.points[0], want.scores[0], *want.twins[0]])
            if not (got.shape == exp.shape and np.allclose(got, exp, atol=0.051)):
                wrong = True
                notes.append(f"as target: match {got.tolist()} != {np.round(exp, 3).tolist()}")
    case.rows.update(outcome=outcome, wrong=wrong, unclear=unclear, notes=notes,
                     executed=case.marker is not None and case.marker.exists())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="keep the work folder (backbone, server log) here")
    args = parser.parse_args()

    import torch
    from transformers import AutoModel

    import geocorr
    from geocorr.backbones import tiny_config

    work = Path(args.keep or tempfile.mkdtemp(prefix="demo-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    backbone = work / "tiny-dinov2"
    torch.manual_seed(0)
    AutoModel.from_config(tiny_config()).save_pretrained(backbone)
    reference = geocorr.load("dinov2", backbone=str(backbone), image_size=IMAGE_SIZE)

    print("building the files ...", flush=True)
    cases = make_cases(work)
    print(f"starting geocorr demo ({backbone}) ...", flush=True)
    demo = Demo(backbone, work / "server.log")
    good = pattern(120, 160, 99)
    good_payload = demo.upload("good.png", save(Image.fromarray(good), "PNG"))
    warm = demo.call(FN_CLICK, [good_payload, good_payload, None, False, True], {"index": list(CLICK), "value": None})
    assert warm["ok"], warm
    base_rss = demo.status("VmHWM")
    print(f"server pid {demo.proc.pid}, port {demo.port}, peak RSS after a normal click {base_rss} MiB\n", flush=True)

    head = f"{'file':<40} {'uploaded as':<14} {'expect':<7} {'result':<9} {'s':>6} {'peak MiB':>8}  notes / message"
    print(head + "\n" + "-" * len(head), flush=True)
    crashes = 0
    try:
        for case in cases:
            t0 = time.perf_counter()
            if not demo.alive():
                crashes += 1
                break
            run_case(demo, case, reference, good, good_payload)
            case.rows["seconds"] = time.perf_counter() - t0
            case.rows["peak"] = demo.status("VmHWM")
            case.rows["alive"] = demo.alive()
            crashes += not case.rows["alive"]
            r = case.rows
            note = "; ".join(r["notes"]) or (r["errors"][-1] if r["errors"] else "")
            if r["unclear"]:
                note = f"UNCLEAR ({', '.join(r['unclear'])}): " + note
            if r["executed"]:
                note = "EXECUTED: " + note
            print(f"{case.name:<40} {case.filename:<14} {case.expect:<7} {r['outcome']:<9} {r['seconds']:6.1f} "
                  f"{r['peak']:8d}  {note}", flush=True)
    finally:
        alive = demo.alive()
        demo.close()
    done = [c for c in cases if c.rows.get("outcome")]
    refusals = sum(c.rows["outcome"] == "refused" and not c.rows["unclear"] for c in done)
    print(f"\nfaults (hostile files, 3 calls each): {len(cases)}")
    print(f"clear refusals:                       {refusals}")
    print(f"unclear refusals:                     {sum(bool(c.rows['unclear']) for c in done)}")
    correct = sum(c.rows["outcome"] == "accepted" and not c.rows["wrong"] for c in done)
    print(f"accepted and correct:                 {correct}")
    print(f"refused though they must be accepted: {sum(c.rows['outcome'] == 'REFUSED' for c in done)}")
    print(f"files executed (must be 0):           {sum(c.rows['executed'] for c in done)}")
    print(f"silent wrong results (must be 0):     {sum(c.rows['wrong'] for c in done)}")
    print(f"server crashes (must be 0):           {crashes}  (alive at the end: {alive})")
    print(f"server peak RSS:                      {max([base_rss] + [c.rows['peak'] for c in done])} MiB "
          f"(after a normal click: {base_rss} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
