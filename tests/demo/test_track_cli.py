"""``geocorr track`` end to end with the real pretrained ViT-S/14 on a panning shot of a PF-Willow car."""
import csv

import numpy as np
import pytest
from PIL import Image

from geocorr.cli import main
from geocorr.demo.video import VideoWriter

SHIFT = 8  # px per frame: the camera pans right, so the car moves left


@pytest.fixture(scope="module")
def pan_video(pf_willow_root, tmp_path_factory):
    """6 frames of 160×160 crops of Cars_006a.png, the crop window moving SHIFT px right per frame."""
    image = np.asarray(Image.open(pf_willow_root / "car(G)" / "Cars_006a.png").convert("RGB"))
    path = tmp_path_factory.mktemp("video") / "pan.mp4"
    with VideoWriter(path, fps=12, crf=12) as writer:
        for t in range(6):
            writer.write(np.ascontiguousarray(image[20:180, 20 + SHIFT * t : 180 + SHIFT * t]))
    return path


def test_track_follows_a_panning_shot(pan_video, pretrained_vits14, tmp_path, capsys):
    # Two annotated PF-Willow keypoints of the car, (x, y) in the crop of frame 0.
    start = np.array([[110.0 - 20, 45.9 - 20], [131.2 - 20, 61.7 - 20]])
    out, table = tmp_path / "tracked.mp4", tmp_path / "tracks.csv"
    argv = [str(pan_video), "--method", "dinov2", "--backbone", str(pretrained_vits14), "--image-size", "224",
            "--out", str(out), "--csv", str(table), "--batch-size", "4", "--no-progress"]
    for x, y in start:
        argv += ["--point", f"{x},{y}"]
    assert main(["track", *argv]) == 0
    printed = capsys.readouterr().out
    assert "through 6 frames" in printed and "fps" in printed and f"wrote {out}" in printed
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 12
    tracked = np.array([[float(r["x"]), float(r["y"])] for r in rows]).reshape(6, 2, 2)
    expected = start[None] - np.array([SHIFT, 0.0]) * np.arange(6)[:, None, None]
    # one token is 14 · 160 / 224 = 10 px of the frame: the track stays within a token of the truth
    assert np.abs(tracked - expected).max() <= 10.0
    assert out.stat().st_size > 0


def test_track_cli_bad_input(pan_video, pretrained_vits14, tmp_path, capsys):
    model = ["--method", "dinov2", "--backbone", str(pretrained_vits14), "--image-size", "56", "--no-progress"]
    missing = tmp_path / "missing.mp4"
    assert main(["track", str(missing), "--point", "1,1", "--csv", str(tmp_path / "t.csv"), *model]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    assert main(["track", str(junk), "--point", "1,1", "--csv", str(tmp_path / "t.csv"), *model]) == 2
    assert "cannot be decoded" in capsys.readouterr().err
    assert main(["track", str(pan_video), "--point", "500,10", "--csv", str(tmp_path / "t.csv"), *model]) == 2
    assert "points (of the first frame): [[500.0, 10.0]] lie outside the 160×160 image" in capsys.readouterr().err
    assert main(["track", str(pan_video), "--point", "5,10", *model]) == 2
    assert "nothing to write" in capsys.readouterr().err
