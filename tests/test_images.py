import numpy as np
import pytest
import torch
from PIL import Image

from geocorr.images import load_image


def test_reads_png_file_exactly(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (3, 5, 7) and img.dtype == torch.float32
    assert np.array_equal((img * 255).round().byte().permute(1, 2, 0).numpy(), arr)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_non_rgb_file_is_refused_with_its_name(tmp_path, mode):
    Image.new(mode, (4, 4)).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match=rf"x\.png.*RGB.*{mode}"):
        load_image(tmp_path / "x.png", "source")


def test_missing_and_non_image_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="source: no such file"):
        load_image(tmp_path / "nope.png", "source")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "text.png")


def test_tensor_checks():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        load_image(torch.rand(1, 4, 4), "img0")
    bad = torch.rand(3, 4, 4)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        load_image(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(torch.full((3, 2, 2), 255.0))
    with pytest.raises(ValueError, match="uint8"):
        load_image(np.zeros((2, 2, 3), dtype=np.float32))
