import numpy as np
import pytest
import torch
from PIL import Image

from geocorr.images import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    image_size,
    load_image,
    open_image,
)


def test_reads_png_file_exactly(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (3, 5, 7) and img.dtype == torch.float32
    assert np.array_equal((img * 255).round().byte().permute(1, 2, 0).numpy(), arr)


def _hwc(img: torch.Tensor) -> np.ndarray:
    return (img * 255).round().byte().permute(1, 2, 0).numpy()


def test_grayscale_file_is_grey_on_three_channels(tmp_path):
    grey = np.array([[0, 50, 255], [7, 128, 200]], dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.jpg", quality=100)  # CUB-200 ships grey JPEGs
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    img = _hwc(load_image(tmp_path / "g.png"))
    assert np.array_equal(img, np.repeat(grey[..., None], 3, axis=2))
    assert load_image(tmp_path / "g.jpg").shape == (3, 2, 3)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 65535], [32896, 1000, 60000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")  # opens as I;16
    img = _hwc(load_image(tmp_path / "d.png"))
    expected = np.round(values / 257).astype(np.uint8)  # 65535 -> 255, 257 -> 1, 32896 -> 128
    assert np.array_equal(img[..., 0], expected) and np.array_equal(img[..., 2], expected)
    arr = load_image(values)  # a uint16 array: the same scale, no rounding to 8 bits
    assert torch.allclose(arr[0], torch.from_numpy(values / 65535).float())


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((1, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 0, 0, 255)  # opaque red
    rgba[0, 1] = (200, 0, 0, 0)  # fully transparent: white
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black over white: 255 * (1 - 128/255) = 127
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    img = _hwc(load_image(tmp_path / "t.png"))
    assert img[0, 0].tolist() == [200, 0, 0]
    assert img[0, 1].tolist() == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in img[0, 2].tolist())
    arr = load_image(rgba)  # the same rule for arrays
    assert np.abs(_hwc(arr).astype(int) - img.astype(int)).max() <= 1


def test_palette_with_transparency(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 0, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "p.png")
    img = _hwc(load_image(tmp_path / "p.png"))
    assert img[0, 0].tolist() == [10, 20, 30] and img[0, 1].tolist() == [255, 255, 255]


def test_exif_rotation_is_applied(tmp_path):
    arr = np.zeros((16, 32, 3), dtype=np.uint8)  # stored 32 wide, 16 high
    arr[:8, :8] = (255, 0, 0)  # red block at the stored top-left
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = _hwc(load_image(tmp_path / "r.jpg"))
    assert out.shape == (32, 16, 3)  # displayed 16 wide, 32 high
    assert out[2:6, 10:14, 0].min() > 200 and out[2:6, 10:14, 1].max() < 60  # top-left -> top-right
    assert out[2:6, 2:6].max() < 60  # and the displayed top-left is black
    assert image_size(tmp_path / "r.jpg") == (16, 32)  # header-only size agrees
    assert np.array_equal(np.asarray(open_image(tmp_path / "r.jpg")), out)


def test_image_smaller_than_min_side_is_refused(tmp_path):
    Image.new("RGB", (13, 900)).save(tmp_path / "thin.png")
    with pytest.raises(ValueError, match=r"thin\.png.*13×900 pixels, smaller than 14 pixels"):
        load_image(tmp_path / "thin.png", "source", min_side=14)
    assert load_image(tmp_path / "thin.png").shape == (3, 900, 13)  # no minimum asked: loads
    with pytest.raises(ValueError, match="1×1 pixels"):
        load_image(torch.rand(3, 1, 1), "img0", min_side=14)


def test_decompression_bomb_guard_names_pixels_and_how_to_raise(tmp_path, monkeypatch):
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match=r"big\.png.*300×200 = 60,000 pixels.*limit of 59,999.*"
                                         rf"{MAX_PIXELS_ENV}=60000"):
        load_image(tmp_path / "big.png", "source", max_pixels=59_999)
    assert load_image(tmp_path / "big.png", max_pixels=60_000).shape == (3, 200, 300)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(ValueError, match="limit of 1,000"):
        load_image(tmp_path / "big.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "60000")  # the user raised it
    assert load_image(tmp_path / "big.png").shape == (3, 200, 300)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MAX_PIXELS_ENV}='lots'"):
        load_image(tmp_path / "big.png")
    assert DEFAULT_MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS  # Pillow's own refusal threshold


def test_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    # A 20000 x 20000 PNG of zeros is ~1 MB on disk but 1.2 GB decoded: refused from the header,
    # with our message, not Pillow's DecompressionBombError.
    big = Image.new("L", (20000, 20000))
    big.save(tmp_path / "bomb.png", optimize=False)
    del big
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    with pytest.raises(ValueError, match=r"20000×20000 = 400,000,000 pixels"):
        load_image(tmp_path / "bomb.png")
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's global was restored


def test_truncated_file_is_one_line(tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png", "target")


def test_missing_and_non_image_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="source: no such file"):
        load_image(tmp_path / "nope.png", "source")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "text.png")


def test_text_chunk_bomb_names_the_file(tmp_path):
    """A PNG whose zTXt chunk inflates past Pillow's text limit: Pillow's ValueError comes from
    Image.open and must still name the file (found by benchmarks/demo_hostile_uploads.py)."""
    from PIL.PngImagePlugin import MAX_TEXT_CHUNK, PngInfo

    info = PngInfo()
    info.add_text("Comment", "0" * (2 * MAX_TEXT_CHUNK), zip=True)  # a few kB on disk
    Image.new("RGB", (20, 20)).save(tmp_path / "holiday.png", pnginfo=info)
    with pytest.raises(ValueError, match=r"source: .*holiday\.png is not a readable image file"):
        load_image(tmp_path / "holiday.png", "source")


def test_tensor_and_array_inputs():
    x = torch.rand(3, 4, 5)
    assert load_image(x) is x  # float32 RGB tensors pass through without a copy
    assert torch.equal(load_image(torch.full((1, 2, 2), 0.5)), torch.full((3, 2, 2), 0.5))
    u8 = torch.tensor([[[0, 255]]], dtype=torch.uint8).expand(3, 1, 2)
    assert torch.equal(load_image(u8), torch.tensor([[[0.0, 1.0]]]).expand(3, 1, 2))
    assert torch.equal(load_image(np.full((2, 2), 255, dtype=np.uint8)), torch.ones(3, 2, 2))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        load_image(torch.rand(2, 4, 4), "img0")
    bad = torch.rand(3, 4, 4)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        load_image(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(torch.full((3, 2, 2), 255.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(np.full((2, 2, 3), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="int32"):
        load_image(np.zeros((2, 2, 3), dtype=np.int32))


def test_dense_methods_refuse_images_smaller_than_a_patch():
    import geocorr
    from geocorr.backbones import tiny_config

    model = geocorr.load("dinov2", backbone=tiny_config(), image_size=28)
    ok = torch.rand(3, 30, 30)
    for shape in [(3, 1, 1), (3, 13, 900)]:  # the "matches" with scores 0.37 / -0.24
        with pytest.raises(ValueError, match=r"smaller than 14 pixels on a side"):
            model.match(torch.rand(*shape), ok, [[0.0, 0.0]])
    assert model.match(ok, torch.rand(3, 14, 900), [[3.0, 3.0]]).points.shape == (1, 2)


def test_demo_upload_cap_and_conversion(tmp_path):
    pytest.importorskip("gradio")
    import gradio as gr

    from geocorr.demo.app import read_upload

    Image.new("LA", (40, 30), (90, 255)).save(tmp_path / "grey_alpha.png")
    arr = read_upload({"path": str(tmp_path / "grey_alpha.png"), "orig_name": "g.png"}, "Source")
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8 and (arr == 90).all()
    with pytest.raises(gr.Error, match=r"Target: 'g\.png' is 40×30 = 1,200 pixels; the demo takes images up to 1,000"):
        read_upload({"path": str(tmp_path / "grey_alpha.png"), "orig_name": "g.png"}, "Target", max_pixels=1000)
    (tmp_path / "t.png").write_text("text")
    with pytest.raises(gr.Error, match="not an image file"):
        read_upload({"path": str(tmp_path / "t.png")}, "Source")
