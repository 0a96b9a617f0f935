"""ONNX export: onnxruntime gives PyTorch's features and argmax matches on real PF-Willow pairs."""
import io
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
import scipy.io
import torch

pytest.importorskip("onnxruntime")  # the `export` extra
pytest.importorskip("onnxscript")

import geocorr
from geocorr.cli import main
from geocorr.deploy.onnx import OnnxMatcher, export_onnx

PAIRS = [("car(G)", 0, 1), ("duck(S)", 0, 1), ("motorbike(M)", 2, 3)]
RTOL = 1e-4  # max |Δ| / max |f| between onnxruntime and PyTorch (fp32; observed ~1e-6)


@pytest.fixture(scope="module")
def adapter_file(random_geco_lora, tiny_backbone_dir, tmp_path_factory):
    """A GECO LoRA with non-zero random factors (a fresh one would not change the features)."""
    return random_geco_lora(tiny_backbone_dir, 224, tmp_path_factory.mktemp("adapter") / "lora.safetensors")


@pytest.fixture(scope="module")
def geco(tiny_backbone_dir, adapter_file):
    return geocorr.load("geco", backbone=tiny_backbone_dir, adapter=adapter_file, image_size=224)


@pytest.fixture(scope="module")
def dynamic_onnx(geco, tmp_path_factory):
    return export_onnx(geco, tmp_path_factory.mktemp("onnx") / "geco-dynamic.onnx", dynamic=True, method="geco")


@pytest.fixture(scope="module")
def cli_export(tiny_backbone_dir, adapter_file, pf_willow_root, tmp_path_factory):
    """`geocorr export` with a fixed input size, checked on two real images and one corrupt file."""
    folder = tmp_path_factory.mktemp("cli")
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG but truncated")
    images = sorted((pf_willow_root / "car(G)").glob("*.png"))[:2]
    out = folder / "geco.onnx"
    argv = ["export", "--method", "geco", "--format", "onnx", "--out", str(out), "--backbone", str(tiny_backbone_dir),
            "--adapter", str(adapter_file), "--image-size", "224", "--check", str(images[0]), str(corrupt),
            str(images[1])]
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        rc = main(argv)
    return rc, stdout.getvalue(), stderr.getvalue(), out, images, corrupt


def _pair(pf_willow_root, category, i, j):
    paths = sorted((pf_willow_root / category).glob("*.png"))
    points = torch.tensor(scipy.io.loadmat(paths[i].with_suffix(".mat"))["pts_coord"].T, dtype=torch.float32)
    return paths[i], paths[j], points


def _relative_error(a, b):
    return ((a - b).abs().max() / a.abs().max()).item()


@pytest.mark.parametrize("upsample", ["features", "none"])
def test_onnx_gives_pytorch_features_and_matches_on_pf_willow(geco, dynamic_onnx, pf_willow_root, upsample):
    exported = OnnxMatcher(dynamic_onnx, upsample=upsample)
    geco.conf["upsample"] = upsample
    for category, i, j in PAIRS:
        src, dst, points = _pair(pf_willow_root, category, i, j)
        ours, theirs = geco.features([src, dst]), exported.features([src, dst])
        assert ours.grids == theirs.grids
        assert _relative_error(ours.dense, theirs.dense) < RTOL
        points = points.clamp(min=0).minimum(torch.tensor(ours.grids[0].image_hw[::-1]) - 1.0)
        want = geco.match_features(ours[0], ours[1], points)
        got = exported.match(src, dst, points)
        assert torch.equal(got.points, want.points), category
        torch.testing.assert_close(got.scores, want.scores, atol=1e-4, rtol=0)
    geco.conf["upsample"] = "features"


def test_export_contains_the_merged_lora(geco, dynamic_onnx, tiny_backbone_dir):
    image = torch.rand(1, 3, 224, 224)
    bare = geocorr.load("dinov2", backbone=tiny_backbone_dir, image_size=224)
    with torch.no_grad():
        adapted, plain = geco.backbone(image), bare.backbone(image)
    onnx = OnnxMatcher(dynamic_onnx).backbone(image)
    assert _relative_error(adapted, onnx) < RTOL
    assert _relative_error(plain, onnx) > 0.05  # the LoRA changes the features: it was exported


def test_dynamic_export_takes_any_multiple_of_the_patch(geco, dynamic_onnx):
    exported = OnnxMatcher(dynamic_onnx)
    assert exported.backbone.fixed_hw is None and exported.method == "geco"
    for shape in [(1, 3, 140, 280), (3, 3, 518, 518), (2, 3, 14, 42)]:
        x = torch.randn(shape)
        with torch.no_grad():
            want = geco.backbone(x)
        got = exported.backbone(x)
        assert got.shape == want.shape == (shape[0], 32, shape[2] // 14, shape[3] // 14)
        assert _relative_error(want, got) < RTOL
    with pytest.raises(ValueError, match="multiples of 14"):
        exported.backbone(torch.randn(1, 3, 100, 100))


def test_cli_export_fixed_size_checks_images_and_names_the_corrupt_one(cli_export, geco):
    rc, stdout, stderr, out, images, corrupt = cli_export
    assert rc == 2 and out.is_file()  # the model is written; exit 2 because one --check image failed
    assert f"wrote {out}: image (B, 3, 224, 224)" in stdout
    for image in images:
        line = next(line for line in stdout.splitlines() if line.startswith(str(image)))
        assert float(line.split("max |Δ| / max |f| = ")[1].split(",")[0]) < RTOL
    assert f"geocorr export: error: --check[1]: {corrupt} is not a readable image" in stderr
    assert "Traceback" not in stderr
    exported = OnnxMatcher(out)
    assert exported.backbone.fixed_hw == (224, 224)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert _relative_error(geco.backbone(x), exported.backbone(x)) < RTOL  # batch is free
    with pytest.raises(ValueError, match=r"takes 224×224 inputs only .*got 280×280.*--dynamic"):
        exported.backbone(torch.randn(1, 3, 280, 280))


@pytest.mark.parametrize("argv,message", [
    (["--format", "tensorrt"], "--format: unknown export format 'tensorrt'; available: onnx"),
    (["--dtype", "bfloat16"], "--dtype bfloat16: ONNX export is float32"),
])
def test_cli_refuses_bad_options(argv, message, tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "m.onnx"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_names_the_missing_package(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the export extra were not installed
    assert main(["export", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "needs the 'onnxscript' package: pip install 'geocorr[export]'" in capsys.readouterr().err


def test_export_refusals(tiny_backbone_dir, tmp_path):
    with pytest.raises(TypeError, match="only dense-feature matchers can be exported, got Linear"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "linear.onnx")
    unmerged = geocorr.load("geco", backbone=tiny_backbone_dir, adapter=None, merge=False, image_size=224)
    with pytest.raises(ValueError, match="merge the LoRA"):
        export_onnx(unmerged, tmp_path / "a.onnx")
    half = geocorr.load("dinov2", backbone=tiny_backbone_dir, image_size=224, dtype="bfloat16")
    with pytest.raises(ValueError, match="ONNX export is float32"):
        export_onnx(half, tmp_path / "b.onnx")
    aspect = geocorr.load("dinov2", backbone=tiny_backbone_dir, image_size=224, resize="keep_aspect")
    with pytest.raises(ValueError, match=r"keep_aspect.*dynamic=True"):
        export_onnx(aspect, tmp_path / "c.onnx")
    with pytest.raises(FileNotFoundError, match="ONNX model: no such file"):
        OnnxMatcher(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.onnx: onnxruntime cannot load it"):
        OnnxMatcher(tmp_path / "junk.onnx")
    assert not list(tmp_path.glob("[abc].onnx"))
