"""Precision and kernels agree with fp32 eager: bf16 / fp16, fused SDPA attention, merged LoRA, torch.compile.

Tolerances (features of a real pretrained ViT-S/14 at 224², relative error = max |Δ| / max |f| over the
batch, cosine = per token):

=========  ===============  ============  ===========================================
dtype      relative error   min cosine    token-argmax matches of PF-Willow keypoints
=========  ===============  ============  ===========================================
bfloat16   ≤ 6e-2           ≥ 0.998       ≥ 90 % identical (observed 100 %)
float16    ≤ 1.5e-2         ≥ 0.9998      all identical
float32    ≤ 1e-5           —             (SDPA vs eager attention, merged vs unmerged LoRA, compiled)
=========  ===============  ============  ===========================================
"""
import pytest
import scipy.io
import torch
import torch.nn.functional as F

import geocorr
from geocorr.backbones import tiny_config
from geocorr.backbones.precision import _probe, check_dtype

HALF = {"bfloat16": (6e-2, 0.998, 0.9), "float16": (1.5e-2, 0.9998, 1.0)}  # rel. error, cosine, matches
FP32 = 1e-5


@pytest.fixture(scope="module")
def pairs(pf_willow_root):
    """Two real PF-Willow pairs: (source, target, source keypoints (10, 2))."""
    out = []
    for category in ("car(G)", "duck(S)"):
        src, dst = sorted((pf_willow_root / category).glob("*.png"))[:2]
        points = torch.tensor(scipy.io.loadmat(src.with_suffix(".mat"))["pts_coord"].T, dtype=torch.float32)
        out.append((src, dst, points))
    return out


@pytest.fixture(scope="module")
def reference(pretrained_vits14, pairs):
    """fp32 eager (SDPA) model and its features of the pairs' images."""
    model = geocorr.load("dinov2", backbone=pretrained_vits14, image_size=224, upsample="none")
    return model, model.features([p for src, dst, _ in pairs for p in (src, dst)])


def _relative_error(a, b):
    return ((a - b).abs().max() / a.abs().max()).item()


def _matches(model, feats, pairs):
    out = []
    for k, (_, _, points) in enumerate(pairs):
        h, w = feats.grids[2 * k].image_hw
        points = points.clamp(min=0).minimum(torch.tensor([w - 1.0, h - 1.0]))
        out.append(model.match_features(feats[2 * k], feats[2 * k + 1], points).points)
    return torch.cat(out)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_agrees_with_fp32(dtype, reference, pretrained_vits14, pairs):
    max_error, min_cosine, same_matches = HALF[dtype]
    model32, feats32 = reference
    model = geocorr.load("dinov2", backbone=pretrained_vits14, image_size=224, dtype=dtype, upsample="none")
    assert next(model.backbone.model.parameters()).dtype == getattr(torch, dtype)
    feats = model.features([p for src, dst, _ in pairs for p in (src, dst)])
    assert feats.dense.dtype == torch.float32  # matching always runs in fp32
    assert _relative_error(feats32.dense, feats.dense) <= max_error
    assert F.cosine_similarity(feats32.dense, feats.dense, dim=1).min() >= min_cosine
    same = (_matches(model32, feats32, pairs) == _matches(model, feats, pairs)).all(1).float().mean()
    assert same >= same_matches


def test_fused_sdpa_attention_equals_eager_attention():
    fused = geocorr.load("dinov2", backbone=tiny_config(num_attention_heads=4), image_size=70)
    assert fused.backbone.model.config._attn_implementation == "sdpa"
    eager = geocorr.load("dinov2", backbone=tiny_config(num_attention_heads=4), image_size=70)
    eager.load_state_dict(fused.state_dict())
    eager.backbone.model.set_attn_implementation("eager")
    assert eager.backbone.model.config._attn_implementation == "eager"
    x = torch.randn(2, 3, 70, 70)
    with torch.no_grad():
        assert _relative_error(eager.backbone(x), fused.backbone(x)) <= FP32


def test_merged_lora_equals_the_unmerged_adapter():
    model = geocorr.load("geco", backbone=tiny_config(), adapter=None, merge=False, image_size=70)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 3, 70, 70)
    with torch.no_grad():
        unmerged = model.backbone(x)
        merged = model.merge().backbone(x)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert _relative_error(unmerged, merged) <= FP32
    base = geocorr.load("dinov2", backbone=tiny_config(), image_size=70)
    base.backbone.model.load_state_dict(model.backbone.model.state_dict())
    with torch.no_grad():
        assert _relative_error(base.backbone(x), merged) <= FP32  # merged GECO is a plain DINOv2


def test_compiled_feature_network_agrees_with_eager():
    # "aot_eager" runs dynamo's graph capture and AOT autograd, not code generation: the "inductor"
    # backend needs ~100 s of C++ compilation on 2 cores, so it is measured in benchmarks/speed_report.py.
    eager = geocorr.load("dinov2", backbone=tiny_config(), image_size=56)
    compiled = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, compile="aot_eager")
    compiled.load_state_dict(eager.state_dict())
    images = [torch.rand(3, 30, 50) for _ in range(3)]
    for batch in (images, images[:1]):  # a second batch size recompiles
        assert _relative_error(eager.features(batch).dense, compiled.features(batch).dense) <= FP32
    assert compiled._compiled is not None
    with pytest.raises(ValueError, match=r"compile must be None, a torch.compile mode .*or backend .*got 'fast'"):
        geocorr.load("dinov2", backbone=tiny_config(), image_size=56, compile="fast")


def _images_and_points():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 30, 50, generator=g) for _ in range(3)]
    return images, torch.rand(7, 2, generator=g) * torch.tensor([49.0, 29.0])


def test_fast_path_gives_the_eager_matches(monkeypatch):
    """compile="reduce-overhead" (the fast path: inductor + CUDA graphs per input shape on a GPU) matches as
    eager does. inductor's C++ build takes ~135 s on 2 CPU cores (measured: features within 3.6e-7 of eager),
    so here torch.compile runs with the "aot_eager" backend substituted; the mode and the fixed shapes
    geocorr asks for are checked as given. The real inductor + CUDA graphs run: the GPU test below."""
    calls, compile_ = [], torch.compile

    def substitute(fn, mode=None, dynamic=None, **kwargs):
        calls.append((mode, dynamic))
        return compile_(fn, backend="aot_eager", dynamic=dynamic)

    monkeypatch.setattr(torch, "compile", substitute)
    eager = geocorr.load("dinov2", backbone=tiny_config(), image_size=56)
    fast = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, compile="reduce-overhead")
    fast.load_state_dict(eager.state_dict())
    images, points = _images_and_points()
    for batch in (images, images[:1]):  # a second input shape: a second graph
        assert _relative_error(eager.features(batch).dense, fast.features(batch).dense) <= FP32
    pair = (images[0], images[1], points)
    assert torch.equal(eager.match(*pair).points, fast.match(*pair).points)
    assert calls == [("reduce-overhead", False)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_fast_path_gives_the_eager_matches():
    eager = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, device="cuda")
    fast = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, device="cuda", compile="reduce-overhead")
    fast.load_state_dict(eager.state_dict())
    images, points = _images_and_points()
    for _ in range(3):  # CUDA graphs are recorded on the first calls, then replayed
        first = fast.features(images[:2]).dense
        fast.features([images[2], images[0]])  # a replay of the same graph must not overwrite `first`
        assert _relative_error(eager.features(images[:2]).dense, first) <= FP32
    pair = (images[0], images[1], points)
    assert torch.equal(eager.match(*pair).points, fast.match(*pair).points)


@pytest.fixture
def fresh_probe():
    _probe.cache_clear()
    yield
    _probe.cache_clear()


def test_a_dtype_the_device_cannot_run_is_refused(monkeypatch, fresh_probe):
    def no_half_attention(q, *args, **kwargs):
        if q.dtype == torch.float16:
            raise RuntimeError("\"scaled_dot_product_attention\" not implemented for 'Half'")
        return sdpa(q, *args, **kwargs)

    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", no_half_attention)
    with pytest.raises(ValueError, match=r"dtype float16 is not supported on device cpu: .*not implemented "
                                         r"for 'Half'.*use float32"):
        geocorr.load("geco", backbone=tiny_config(), adapter=None, image_size=28, dtype="float16")
    assert check_dtype("bfloat16", "cpu") == torch.bfloat16


def test_dtype_and_device_errors(monkeypatch, fresh_probe):
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float16, got 'float8'"):
        check_dtype("float8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda': no CUDA GPU is available on this machine"):
        geocorr.load("dinov2", backbone=tiny_config(), image_size=28, device="cuda", dtype="bfloat16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_bfloat16_agrees_with_cpu_fp32(reference, pretrained_vits14, pairs):
    max_error, min_cosine, _ = HALF["bfloat16"]
    _, feats32 = reference
    model = geocorr.load("dinov2", backbone=pretrained_vits14, image_size=224, dtype="bfloat16", device="cuda")
    feats = model.features([p for src, dst, _ in pairs for p in (src, dst)])
    assert feats.dense.device.type == "cuda"
    assert _relative_error(feats32.dense, feats.dense.cpu()) <= max_error
    assert F.cosine_similarity(feats32.dense, feats.dense.cpu(), dim=1).min() >= min_cosine
