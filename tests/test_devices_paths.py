"""Every user path runs with the model on a second device — checked on a CPU-only machine.

Issue 14: on a GPU every path stopped in ``DinoV2Backbone.preprocess`` with "Expected all tensors to
be on the same device" (the image stayed on the CPU, mean/std moved with the model), and the CPU suite
could not see it. Here a second device, ``fakegpu``, is registered as torch's PrivateUse1 backend
(with torch's own Python device guard, so autograd runs across it). Its tensors are CPU tensors in a
wrapper that says ``device == fakegpu:0``; every operation checks its inputs the way a GPU kernel
does, so an operation mixing a CPU tensor (more than a scalar) with a fakegpu tensor raises the same
``RuntimeError: Expected all tensors to be on the same device`` a CUDA run raises, and ``.numpy()``
of a fakegpu tensor fails as on CUDA. Each path runs with ``device="fakegpu"`` and must complete.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

import geocorr
from geocorr.backbones import tiny_config
from geocorr.cli import main as cli

FAKE = "fakegpu"
aten = torch.ops.aten
# Operations that accept inputs on two devices (copies between devices; CPU index tensors).
CROSS_DEVICE = {aten._to_copy.default, aten.copy_.default, aten._copy_from.default, aten._copy_from_and_resize.default,
                aten.index.Tensor, aten._unsafe_index.Tensor, aten.index_put_.default, aten.index_put.default,
                aten._index_put_impl_.default}


_KERNELS: list = []


def _register_fake_backend() -> None:
    if _KERNELS:
        return
    if torch._C._get_privateuse1_backend_name() != FAKE:  # conftest.py registers it at start-up
        torch.utils.backend_registration._setup_privateuseone_for_python_backend(FAKE)
    # torch.tensor(data, device=...) allocates and copies below the Python dispatch layer: backend kernels.
    lib = torch.library.Library("aten", "IMPL")

    def empty_strided(size, stride, dtype=None, layout=None, device=None, pin_memory=None):
        return FakeGpuTensor(torch.empty_strided(size, stride, dtype=dtype))

    def empty(size, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
        return FakeGpuTensor(torch.empty(size, dtype=dtype))

    def copy_(self, src, non_blocking=False):
        self.elem.copy_(src.elem if isinstance(src, FakeGpuTensor) else src)
        return self

    lib.impl("empty_strided", empty_strided, "PrivateUse1")
    lib.impl("empty.memory_format", empty, "PrivateUse1")
    lib.impl("copy_", copy_, "PrivateUse1")
    _KERNELS.append(lib)  # kept alive for the session


class FakeGpuTensor(torch.Tensor):
    """A CPU tensor (``elem``) that says it lives on ``fakegpu:0``."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> FakeGpuTensor:
        out = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
            layout=elem.layout, device=torch.device(FAKE, 0), requires_grad=elem.requires_grad)
        out.elem = elem
        return out

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __repr__(self) -> str:
        return f"FakeGpuTensor({self.elem!r})"

    def numpy(self, *args, **kwargs):
        raise TypeError(f"can't convert {FAKE}:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
                        f"tensor to host memory first.")

    def __format__(self, spec: str) -> str:
        return self.elem.__format__(spec)

    def tolist(self):
        SYNCS.append("tolist")
        return self.elem.tolist()  # a copy to the host, as on CUDA

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


# Operations that make the host wait for a GPU: a value read back (.item(), a device-to-host copy), or a
# result whose size depends on the data (nonzero, masked_select, indexing with a boolean mask).
SYNCING = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default}
SYNCS: list[str] = []  # the syncing operations applied to fakegpu tensors, in order


def _syncs(func, args, kwargs) -> bool:
    if func in SYNCING:
        return True
    if func.overloadpacket in (aten._to_copy, aten.to) and kwargs.get("device") is not None:
        return torch.device(kwargs["device"]).type == "cpu"  # a copy back (aten.to under inference mode)
    if func in (aten.index.Tensor, aten.index_put_.default):
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)
    return False


def _dispatch(func, args, kwargs):
    flat, _ = tree_flatten((args, kwargs))
    if any(isinstance(a, FakeGpuTensor) for a in flat) and _syncs(func, args, kwargs):
        SYNCS.append(str(func))
    devices = {FAKE if isinstance(a, FakeGpuTensor) else a.device.type
               for a in flat if isinstance(a, torch.Tensor) and (isinstance(a, FakeGpuTensor) or a.dim() > 0)}
    if len(devices) > 1 and func not in CROSS_DEVICE:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{FAKE}:0 and cpu! ({func})")
    if func is aten._fused_sdp_choice.default:
        return 0  # the math attention kernel (made of the ops checked here)
    out_device = FAKE if FAKE in devices else "cpu"
    if kwargs.get("device") is not None:
        out_device = torch.device(kwargs["device"]).type
        kwargs = {**kwargs, "device": torch.device("cpu")}
    if func is aten.copy_.default:
        out_device = FAKE if isinstance(args[0], FakeGpuTensor) else "cpu"

    def unwrap(t):
        return t.elem if isinstance(t, FakeGpuTensor) else t

    out = func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))
    if func._schema.is_mutable and func.overloadpacket.__name__.endswith("_"):
        return args[0]  # in place: the caller's tensor (its elem was written)
    if out_device != FAKE:
        return out
    with torch.inference_mode(False):  # autograd sets a view's version counter from its base's
        return tree_map(lambda t: FakeGpuTensor(t) if type(t) is torch.Tensor or isinstance(t, torch.nn.Parameter)
                        else t, out)


class FakeGpuMode(TorchDispatchMode):
    """Routes every operation (also factory calls with ``device="fakegpu"``) through the device check."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


@pytest.fixture
def fakegpu():
    """Run the test body with the ``fakegpu`` device available; yields its name."""
    _register_fake_backend()
    with FakeGpuMode():
        yield FAKE


def _on_fake(t: torch.Tensor) -> bool:
    return isinstance(t, FakeGpuTensor)


# --- the mechanism itself ----------------------------------------------------------------------------

def test_fake_device_raises_the_gpu_error_for_a_tensor_left_on_the_cpu(fakegpu):
    x = torch.rand(3, 4).to(fakegpu)
    assert x.device.type == fakegpu and _on_fake(x * 2)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        x + torch.ones(3, 4)
    with pytest.raises(TypeError, match="numpy"):
        x.numpy()
    assert x.cpu().numpy().shape == (3, 4)
    lin = torch.nn.Linear(4, 2).to(fakegpu)
    lin(x).square().sum().backward()
    assert _on_fake(lin.weight.grad)


# --- library paths ----------------------------------------------------------------------------------

def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


POINTS = [[5.0, 7.0], [30.0, 20.0], [50.5, 40.0]]


@pytest.mark.parametrize("method, conf", [
    ("dinov2", {"image_size": 56}),
    ("dinov2", {"image_size": 56, "upsample": "none"}),
    ("dinov2", {"image_size": 56, "resize": "pad"}),
    ("geco", {"image_size": 56, "adapter": None}),
    ("geoaware", {"image_size": 56}),
])
def test_dense_methods_features_match_and_match_features_on_the_device(fakegpu, method, conf):
    cpu = geocorr.load(method, backbone=tiny_config(), **conf)
    torch.manual_seed(0)
    model = geocorr.load(method, backbone=tiny_config(), device=fakegpu, **conf)
    model.load_state_dict(cpu.state_dict())
    img0, img1 = _image(60, 64, 0), _image(48, 70, 1)
    feats = model.features([img0, img1])
    assert _on_fake(feats.dense)
    matches = model.match_features(feats[0], feats[1], POINTS)
    assert _on_fake(matches.points) and _on_fake(matches.scores)
    expected = cpu.match(img0, img1, POINTS)
    torch.testing.assert_close(model.match(img0, img1, POINTS).points.cpu(), expected.points)
    # images already on the device are taken as they are
    img0_dev = torch.from_numpy(img0).permute(2, 0, 1).float().div(255).to(fakegpu)
    torch.testing.assert_close(model.match(img0_dev, img1, POINTS).points.cpu(), expected.points)


@pytest.mark.parametrize("conf", [{}, {"upsample": "none"}, {"resize": "pad"}])
def test_matching_never_waits_for_the_device(fakegpu, conf):
    """match_features makes the host wait for the GPU nowhere (no .item(), no copy back, no boolean-mask
    indexing): its results stay on the device for the caller to fetch once."""
    model = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, device=fakegpu, **conf)
    feats = model.features([_image(60, 64, 0), _image(48, 70, 1)])
    SYNCS.clear()
    matches = model.match_features(feats[0], feats[1], POINTS * 100)
    assert SYNCS == [] and _on_fake(matches.points)


def test_tracking_waits_for_the_device_once_per_batch(fakegpu):
    """Tracking a batch of frames copies the tracks back once (points, scores), not once per frame."""
    from geocorr.demo.tracking import PointTracker

    model = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, device=fakegpu, upsample="none")
    frames = [_image(48, 64, t) for t in range(6)]
    tracker = PointTracker(model, frames[0], POINTS[:2])
    SYNCS.clear()
    points, scores = tracker(frames)
    assert points.shape == (6, 2, 2) and scores.shape == (6, 2)
    assert len(SYNCS) == 2, SYNCS


def test_cyclecorr_match_on_the_device(fakegpu):
    cpu = geocorr.load("cyclecorr")
    model = geocorr.load("cyclecorr", device=fakegpu)
    model.load_state_dict(cpu.state_dict())
    img0, img1 = _image(60, 64, 0), _image(48, 70, 1)
    matches = model.match(img0, img1, POINTS)
    torch.testing.assert_close(matches.points.cpu(), cpu.match(img0, img1, POINTS).points)


@pytest.fixture(scope="module")
def semalign3d_setup():
    """A small SemAlign3D class built (on the CPU) from a tiny DINOv2's features of synthetic views."""
    from geocorr.methods.semalign3d import build_representation
    from geocorr.methods.semalign3d.dense import DenseConfig, TrainingView
    from geocorr.methods.semalign3d.focal import FocalConfig
    from geocorr.methods.semalign3d.representation import BuildConfig
    from geocorr.methods.semalign3d.sparse import SparseConfig

    spec = importlib.util.spec_from_file_location("semalign3d_world", Path(__file__).parent / "methods" / "semalign3d"
                                                  / "world.py")  # the synthetic 3D world of SemAlign3D's tests
    world_module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(world_module)
    SyntheticWorld = world_module.SyntheticWorld

    world, generator = SyntheticWorld(seed=0), torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    features = geocorr.load("dinov2", backbone=tiny_config(), image_size=56)
    views, images = [], []
    for i in range(6):
        points, scale = world.instance(generator)
        view = world.render(points, scale, 60.0 * i, 20.0, 2.0)
        images.append(view.features[:3].sigmoid())
        feats = features.features(images[-1])
        views.append(TrainingView(feats.dense[0], feats.grids[0], view.depth, view.mask, view.keypoints,
                                  view.visible, keypoint_depth=view.world[:, 2]))
    conf = BuildConfig(focal=FocalConfig(steps=20), sparse=SparseConfig(steps=30, lr=1e-2),
                       dense=DenseConfig(points_per_image=100, clusters=40))
    return features, build_representation(views, "synthetic", conf=conf), views, images


def test_semalign3d_match_on_the_device(semalign3d_setup, fakegpu):
    from geocorr.methods.base import PairContext

    cpu_features, rep, views, images = semalign3d_setup
    features = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, device=fakegpu)
    features.load_state_dict(cpu_features.state_dict())
    model = geocorr.load("semalign3d", representation=rep, features=features, depth=None,
                         align={"steps": 2, "samples_per_focal": 1, "pixels": 16, "background_pixels": 16})
    query = views[0].keypoints[views[0].visible][:3]
    matches = model.match(images[0], images[1], query, PairContext(masks=(views[0].mask, views[1].mask)))
    assert matches.points.shape == (3, 2) and torch.isfinite(matches.points.cpu()).all()


# --- command-line paths -----------------------------------------------------------------------------

@pytest.fixture
def pair_files(tmp_path) -> list[str]:
    paths = []
    for i, (h, w) in enumerate([(60, 64), (48, 70)]):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(_image(h, w, i)).save(paths[-1])
    return paths


def _tiny_model_args(backbone_dir: Path, device: str) -> list[str]:
    return ["--backbone", str(backbone_dir), "--image-size", "56", "--device", device]


@pytest.mark.parametrize("method", ["dinov2", "geco", "cyclecorr"])
def test_cli_match_on_the_device(fakegpu, method, pair_files, tiny_backbone_dir, tmp_path, capsys):
    model = _tiny_model_args(tiny_backbone_dir, fakegpu) if method != "cyclecorr" else ["--device", fakegpu]
    if method == "geco":
        model += ["--option", "weights=null"]  # a fresh LoRA
    out = tmp_path / "match.png"
    assert cli(["match", *pair_files, "--point", "5,7", "--point", "30,20", "--method", method, *model,
                "--out", str(out)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.count("->") == 2 and out.stat().st_size > 0


def test_cli_eval_and_metrics_on_the_device(fakegpu, pf_willow_root, tiny_backbone_dir, tmp_path, capsys):
    preds, report = tmp_path / "preds.json", tmp_path / "eval.json"
    argv = ["eval", "--method", "dinov2", *_tiny_model_args(tiny_backbone_dir, fakegpu), "--dataset", "pf-willow",
            "--root", str(pf_willow_root), "--max-pairs", "3", "--save-predictions", str(preds),
            "--out", str(report), "--no-progress"]
    assert cli(argv) == 0, capsys.readouterr().err
    assert cli(["metrics", str(preds), "--out", str(tmp_path / "metrics.json")]) == 0, capsys.readouterr().err
    assert json.loads(report.read_text()) and json.loads((tmp_path / "metrics.json").read_text())


def test_cli_track_on_the_device(fakegpu, tiny_backbone_dir, tmp_path, capsys):
    from geocorr.demo.video import VideoWriter

    video = tmp_path / "clip.mp4"
    with VideoWriter(video, fps=10) as writer:
        for t in range(4):
            writer.write(_image(48, 64, t))
    table = tmp_path / "tracks.csv"
    argv = ["track", str(video), "--point", "10,10", "--point", "40,30", "--method", "dinov2",
            *_tiny_model_args(tiny_backbone_dir, fakegpu), "--csv", str(table), "--batch-size", "2", "--no-progress"]
    assert cli(argv) == 0, capsys.readouterr().err
    assert len(table.read_text().splitlines()) == 1 + 4 * 2


def test_demo_point_matcher_on_the_device(fakegpu):
    from geocorr.demo.app import PointMatcher

    model = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, device=fakegpu)
    result = PointMatcher(model)(_image(60, 64, 0), _image(48, 70, 1), POINTS, twin=True)
    assert result.points.shape == (3, 2) and result.twins.shape == (3, 2) and np.isfinite(result.scores).all()


def test_cli_export_check_on_the_device(fakegpu, pair_files, tiny_backbone_dir, tmp_path, capsys, monkeypatch):
    """``--check`` compares the device's features with onnxruntime's (CPU). The export itself is traced
    from a CPU twin (same weights): torch.export cannot trace the fake device's wrapper tensors."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from torch.utils._python_dispatch import _disable_current_modes

    import geocorr.deploy.onnx as onnx_module

    export_onnx = onnx_module.export_onnx

    def export_cpu_twin(model, path, **kwargs):
        assert model.device.type == fakegpu
        with _disable_current_modes():
            twin = geocorr.load("dinov2", backbone=tiny_backbone_dir, image_size=56)
            return export_onnx(twin, path, **kwargs)

    monkeypatch.setattr(onnx_module, "export_onnx", export_cpu_twin)
    argv = ["export", "--method", "dinov2", *_tiny_model_args(tiny_backbone_dir, fakegpu),
            "--out", str(tmp_path / "m.onnx"), "--check", *pair_files]
    assert cli(argv) == 0, capsys.readouterr().err
    lines = [line for line in capsys.readouterr().out.splitlines() if "min cosine" in line]
    assert len(lines) == 2
    assert all(float(line.split("max |Δ| / max |f| = ")[1].split(",")[0]) < 1e-4 for line in lines)


class _Killed(Exception):
    """Stands for the process being killed mid-run."""


@pytest.fixture
def fresh_accelerate(monkeypatch):
    """accelerate's process state is a singleton: start and leave it unset (and its device variable)."""
    from accelerate.state import AcceleratorState

    monkeypatch.setenv("ACCELERATE_TORCH_DEVICE", "cpu")
    monkeypatch.delenv("ACCELERATE_TORCH_DEVICE")
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_cli_train_validation_and_resume_on_the_device(fakegpu, fresh_accelerate, pf_willow_root, tiny_backbone_dir,
                                                       tmp_path, capsys, monkeypatch):
    from accelerate.state import AcceleratorState

    from geocorr.training.recipes.geco import GecoTraining

    out = tmp_path / "run"
    argv = ["train", "--method", "geco", "--dataset", "pf-willow", "--root", str(pf_willow_root),
            "--val-fraction", "0.5", "--val-pairs", "2", "--per-category", "2", "--max-steps", "2",
            "--batch-size", "1", "--image-size", "56", "--backbone", str(tiny_backbone_dir), "--out", str(out),
            "--checkpoint-every", "1", "--val-every", "1", "--device", fakegpu, "--no-progress"]
    step = GecoTraining.training_step
    calls = []

    def killed_at_second_step(self, batch):
        assert batch["source_image"].device.type == fakegpu  # accelerate moved the batch to --device
        calls.append(1)
        if len(calls) == 2:
            raise _Killed
        return step(self, batch)

    monkeypatch.setattr(GecoTraining, "training_step", killed_at_second_step)
    with pytest.raises(_Killed):
        cli(argv)
    monkeypatch.setattr(GecoTraining, "training_step", step)
    AcceleratorState._reset_state(reset_partial_state=True)  # a new process would start afresh
    assert cli([*argv, "--resume"]) == 0, capsys.readouterr().err
    assert "pck@0.10" in capsys.readouterr().out and (out / "adapter.safetensors").is_file()
    validations = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in validations if "val_pck@0.10" in r] == [1, 2]

