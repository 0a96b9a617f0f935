"""Every registered method through every face: match, eval, demo, track and (where it applies) export.

Each method is built tiny (a random DINOv2 folder, a tiny flow network, a SemAlign3D class built by
``geocorr semalign3d build`` on 4 PF-Willow images). The expected answer of every face is the
method's own ``match`` on the same images, with the pair context built here by hand (category,
keypoint boxes): a face that matches with anything else (the feature model under SemAlign3D,
whole images instead of object boxes for cyclecorr) fails.
"""
import csv
import dataclasses
import inspect
import json

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

import geocorr
from geocorr.cli import main
from geocorr.methods import METHODS, get
from geocorr.methods.base import PairContext, is_dense

CATEGORY = "car(G)"
SIZE = 56  # backbone input side: a 4×4 token grid
SEMALIGN3D_ALIGN = {"steps": 3, "samples_per_focal": 1, "pixels": 32, "background_pixels": 32}
TINY_ENCODER = [[4, 2], [4, 1], [8, 2], [8, 1], [8, 2], [8, 1], [16, 2], [16, 1]]
TINY_DECODER = [[16, 1], [8, 2], [8, 1], [8, 2], [8, 1], [4, 2], [4, 1], [4, 2]]


# ---------------------------------------------------------------- tiny methods

@pytest.fixture(scope="module")
def willow(pf_willow_root):
    """The first PF-Willow car(G) images with their keypoints (pixel-centre: file values − 1)."""
    images = sorted((pf_willow_root / CATEGORY).glob("*.png"))[:4]
    keypoints = [scipy.io.loadmat(p.with_suffix(".mat"))["pts_coord"].T.astype(np.float64) - 1 for p in images]
    return images, keypoints


@pytest.fixture(scope="module")
def cyclecorr_weights(tmp_path_factory):
    """A tiny random flow network saved as training saves it (config in the metadata)."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    model = geocorr.load("cyclecorr", network={"image_size": 32, "encoder": TINY_ENCODER, "decoder": TINY_DECODER})
    path = tmp_path_factory.mktemp("cyclecorr") / "network.safetensors"
    network = dataclasses.asdict(model.net.config)
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, str(path),
              metadata={"network": json.dumps(network)})
    return path


@pytest.fixture(scope="module")
def semalign3d_class(build_semalign3d_class, tiny_backbone_dir, tmp_path_factory):
    """A car(G) class representation built by the CLI from tiny DINOv2 features and a tiny depth model."""
    return build_semalign3d_class(tiny_backbone_dir, tmp_path_factory.mktemp("semalign3d"), CATEGORY, SIZE)


@pytest.fixture(scope="module")
def tiny(tiny_backbone_dir, cyclecorr_weights, semalign3d_class):
    """name -> (CLI model arguments, the same options for geocorr.load)."""
    backbone = ["--backbone", str(tiny_backbone_dir), "--image-size", str(SIZE)]
    dense = {"backbone": str(tiny_backbone_dir), "image_size": SIZE}
    return {
        "dinov2": (backbone, dense),
        "geco": ([*backbone, "--option", "weights=null"], {**dense, "weights": None}),
        "geoaware": (backbone, dense),
        # the flags go to the feature method; depth=null must reach the method (it was dropped before)
        "semalign3d": ([*backbone, "--weights", str(semalign3d_class), "--option", "features=dinov2",
                        "--option", "depth=null", "--option", f"align={json.dumps(SEMALIGN3D_ALIGN)}"],
                       {**dense, "weights": str(semalign3d_class), "features": "dinov2", "depth": None,
                        "align": SEMALIGN3D_ALIGN}),
        "cyclecorr": (["--weights", str(cyclecorr_weights)], {"weights": str(cyclecorr_weights)}),
    }


def test_every_method_has_a_tiny_setting(tiny):
    assert set(tiny) == set(METHODS)


def keypoint_box(points: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of the points, as the paper's object box of an unboxed PF-Willow image."""
    return np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()])


# ---------------------------------------------------------------- the registry itself

@pytest.mark.parametrize("name", sorted(METHODS))
def test_entry_declares_what_the_model_is(name, tiny):
    entry = get(name)
    model = geocorr.load(name, **tiny[name][1])
    assert entry.dense == is_dense(model)
    assert entry.needs <= {f.name for f in dataclasses.fields(PairContext)}
    for field in dataclasses.fields(entry.options):
        assert field.metadata["help"].strip(), f"{name}.{field.name} has no help line"


def _factory_defaults(name: str) -> dict:
    """Defaults of the method's own load() parameters and of its model's default_conf."""
    from importlib import import_module

    module = import_module(f"geocorr.methods.{name}")
    params = inspect.signature(module.load).parameters
    found = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    model_class = {"dinov2": "geocorr.methods.base:DenseMatcher", "geco": "geocorr.methods.geco:Geco",
                   "geoaware": "geocorr.methods.geoaware:GeoAware",
                   "semalign3d": "geocorr.methods.semalign3d:SemAlign3D",
                   "cyclecorr": "geocorr.methods.cyclecorr:CycleCorr"}[name]
    mod, cls = model_class.split(":")
    model = getattr(import_module(mod), cls)
    own = {k: p.default for k, p in inspect.signature(model.__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    return {**model.default_conf, **own, **found}


RENAMED = {"geco": {"weights": "adapter"}, "semalign3d": {"weights": "representation"}}
METHOD_DECIDES = {("geoaware", "window"), ("cyclecorr", "network"),  # None: the method's own rule
                  ("semalign3d", "backbone"), ("semalign3d", "image_size"), ("semalign3d", "dtype")}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_option_defaults_are_the_methods_defaults(name):
    defaults = _factory_defaults(name)
    for field in dataclasses.fields(get(name).options):
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if (name, field.name) in METHOD_DECIDES or required:
            continue
        value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        key = RENAMED.get(name, {}).get(field.name, field.name)
        assert key in defaults, f"{name}: option {field.name} is not a parameter of the method"
        assert defaults[key] == value, f"{name}.{field.name}: registry {value!r}, method {defaults[key]!r}"


def test_registry_validates_options():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['colour'\] for method dinov2; valid: .*upsample"):
        geocorr.load("dinov2", colour=3)
    with pytest.raises(ValueError, match=r"method semalign3d needs option\(s\) \['weights'\]: weights \(required\)"):
        geocorr.load("semalign3d")
    with pytest.raises(ValueError, match="'adapter' and 'weights' name the same thing"):
        geocorr.load("geco", adapter=None, weights=None)


def test_cli_flags_are_checked_against_the_method(willow, capsys):
    images = [str(p) for p in willow[0][:2]]
    assert main(["match", *images, "--point", "1,1", "--method", "cyclecorr", "--backbone", "x"]) == 2
    assert "--backbone does not apply to --method cyclecorr" in capsys.readouterr().err
    assert main(["match", *images, "--point", "1,1", "--method", "dinov2", "--option", "colour=1"]) == 2
    assert "unknown option(s) ['colour'] for method dinov2" in capsys.readouterr().err


def test_help_lists_every_methods_options(capsys):
    with pytest.raises(SystemExit):
        main(["match", "--help"])
    out = capsys.readouterr().out
    for name, entry in METHODS.items():
        assert f"  {name}: {entry.summary}" in out
        for field in dataclasses.fields(entry.options):
            assert f"    {field.name} (" in out


# ---------------------------------------------------------------- the faces

@pytest.mark.parametrize("name", sorted(METHODS))
def test_match_face(name, tiny, willow, capsys):
    args, conf = tiny[name]
    (src, trg, *_), (kp0, kp1, *_) = willow
    query = kp0[:2]
    context = PairContext(category=CATEGORY, boxes=(keypoint_box(kp0), keypoint_box(kp1)))
    code = main(["match", str(src), str(trg), *[a for p in query for a in ("--point", f"{p[0]},{p[1]}")],
                 "--method", name, *args, "--category", CATEGORY,
                 "--box", ",".join(map(str, context.boxes[0])), "--box", ",".join(map(str, context.boxes[1]))])
    out = capsys.readouterr()
    assert code == 0, out.err
    printed = [line.split("->")[1].split("score")[0].strip(" ()") for line in out.out.splitlines() if "->" in line]
    points = np.array([[float(v) for v in p.split(",")] for p in printed])
    expected = geocorr.load(name, **conf).match(str(src), str(trg), query, context)
    np.testing.assert_allclose(points, expected.points.numpy(), atol=0.051)  # printed with one decimal


@pytest.mark.parametrize("name", sorted(METHODS))
def test_eval_face_on_two_pf_willow_pairs(name, tiny, pf_willow_root, tmp_path, capsys):
    from geocorr.evaluation.predictions import Predictions

    args, conf = tiny[name]
    saved = tmp_path / "predictions.json"
    code = main(["eval", "--method", name, *args, "--dataset", "pf-willow", "--root", str(pf_willow_root),
                 "--category", CATEGORY, "--max-pairs", "2", "--protocol", "geocorr", "--no-progress",
                 "--save-predictions", str(saved)])
    assert code == 0, capsys.readouterr().err
    pairs = Predictions.load(saved).pairs
    assert len(pairs) == 2
    model = geocorr.load(name, **conf)
    for pair in pairs:
        src_vis, trg_vis = np.asarray(pair.source_visible, bool), np.asarray(pair.target_visible, bool)
        query = np.asarray(pair.source_keypoints)[src_vis]
        boxes = (keypoint_box(query), keypoint_box(np.asarray(pair.target_keypoints)[trg_vis]))
        expected = model.match(pair.source, pair.target, query, PairContext(category=CATEGORY, boxes=boxes))
        np.testing.assert_allclose(np.asarray(pair.predicted)[src_vis], expected.points.numpy(), atol=1e-4)
        if name == "cyclecorr":  # the boxes matter: whole images would give other matches
            whole = model.match(pair.source, pair.target, query)
            assert np.abs(whole.points.numpy() - expected.points.numpy()).max() > 1.0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_demo_face_one_click(name, tiny, willow):
    from geocorr.demo.app import PointMatcher, render

    _, conf = tiny[name]
    model = geocorr.load(name, **conf)
    (src, trg, *_), (kp0, *_) = willow
    source, target = (np.asarray(Image.open(p).convert("RGB")) for p in (src, trg))
    click = [tuple(kp0[0])]
    result = PointMatcher(model)(source, target, click, twin=True)
    expected = model.match(source, target, click)
    np.testing.assert_allclose(result.points, expected.points.numpy(), atol=1e-4)
    left, right = render(source, target, click, result)
    assert left.shape == source.shape and right.shape == target.shape


@pytest.mark.parametrize("name", sorted(METHODS))
def test_demo_page_click_callback(name, tiny, willow):
    """One click through the page's own callback (uploads as Gradio passes them, no browser)."""
    import gradio as gr

    from geocorr.demo.app import build_app

    _, conf = tiny[name]
    model = geocorr.load(name, **conf)
    (src, trg, *_), (kp0, *_) = willow
    fns = build_app(model).fns
    on_click = next(f.fn for f in (fns.values() if isinstance(fns, dict) else fns)
                    if f.fn is not None and f.fn.__name__ == "on_click")
    upload = [{"path": str(p), "orig_name": p.name} for p in (src, trg)]
    click = gr.SelectData(None, {"index": [float(kp0[0][0]), float(kp0[0][1])], "value": None})
    points, left, right, text = on_click(*upload, [], False, False, click)
    source, target = (np.asarray(Image.open(p).convert("RGB")) for p in (src, trg))
    expected = model.match(source, target, points).points[0].tolist()
    assert text.startswith(f"#1 ({kp0[0][0]:.0f}, {kp0[0][1]:.0f}) -> ({expected[0]:.1f}, {expected[1]:.1f})  score ")
    assert left.shape == source.shape and right.shape == target.shape


@pytest.fixture(scope="module")
def video(willow, tmp_path_factory):
    """Three PF-Willow car(G) images as frames (112×84) of a video, and the frames as decoded."""
    from geocorr.demo.video import VideoWriter, read_frames

    path = tmp_path_factory.mktemp("video") / "cars.mp4"
    with VideoWriter(path, fps=5, crf=10) as writer:
        for p in willow[0][:3]:
            writer.write(np.asarray(Image.open(p).convert("RGB").resize((112, 84))))
    return path, list(read_frames(path))


# Dense methods track by token argmax of the first frame's query features: the same as their
# match() on the token grid (no up-sampling, argmax inference).
TRACK_OPTIONS = {"dinov2": {"upsample": "none"}, "geco": {"upsample": "none"},
                 "geoaware": {"upsample": "none", "inference": "argmax"}}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_track_face_three_frames(name, tiny, video, tmp_path, capsys):
    args, conf = tiny[name]
    path, frames = video
    extra = TRACK_OPTIONS.get(name, {})
    table = tmp_path / "tracks.csv"
    points = [(30.0, 40.0), (70.0, 20.0)]
    code = main(["track", str(path), *[a for p in points for a in ("--point", f"{p[0]},{p[1]}")],
                 "--csv", str(table), "--no-progress", "--method", name, *args,
                 *[a for k, v in extra.items() for a in ("--option", f"{k}={v}")]])
    assert code == 0, capsys.readouterr().err
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * len(points)
    tracked = np.array([[float(r["x"]), float(r["y"])] for r in rows]).reshape(3, len(points), 2)
    model = geocorr.load(name, **conf, **extra)
    # every frame goes through the method's match; frame 0 is then reported as the given points
    expected = np.stack([model.match(frames[0], frame, points).points.numpy() for frame in frames])
    expected[0] = points
    np.testing.assert_allclose(tracked, expected, atol=0.006)  # written with two decimals


@pytest.mark.parametrize("name", sorted(METHODS))
def test_export_face(name, tiny, willow, tmp_path, capsys):
    args, conf = tiny[name]
    out = tmp_path / "model.onnx"
    code = main(["export", "--method", name, *args, "--out", str(out)])
    err = capsys.readouterr().err
    if not get(name).exportable:
        assert code == 2 and f"--method {name}: has no dense feature network to export as ONNX" in err
        return
    pytest.importorskip("onnxruntime")
    from geocorr.deploy.onnx import OnnxMatcher

    assert code == 0, err
    image = str(willow[0][0])
    ours = geocorr.load(name, **conf).features([image]).dense
    theirs = OnnxMatcher(out).features([image]).dense
    assert (ours - theirs).abs().max() <= 1e-4 * ours.abs().max()


def test_context_is_validated():
    with pytest.raises(ValueError, match=r"context\.boxes: the target box must be finite"):
        PairContext(boxes=((0, 0, 5, 5), (3, 0, 1, 5)))
    with pytest.raises(ValueError, match="target_keypoints and target_visible go together"):
        PairContext(target_keypoints=np.zeros((2, 2)))
    context = PairContext(category="car", boxes=([0, 0, 5, 5], [1, 1, 4, 4]))
    assert context.given() == {"category", "boxes"} and context.boxes[1].dtype == np.float64


def test_match_pair_reuses_features_only_for_dense_methods(tiny):
    from geocorr.methods.base import match_pair

    calls = []

    def features_of(image):
        calls.append(1)
        return dense.features([image])

    dense = geocorr.load("dinov2", **tiny["dinov2"][1])
    flow = geocorr.load("cyclecorr", **tiny["cyclecorr"][1])
    img0, img1 = torch.rand(3, 40, 50), torch.rand(3, 44, 30)
    got = match_pair(dense, img0, img1, [[10.0, 12.0]], features_of=features_of)
    assert len(calls) == 2 and torch.equal(got.points, dense.match(img0, img1, [[10.0, 12.0]]).points)
    got = match_pair(flow, img0, img1, [[10.0, 12.0]], features_of=features_of)
    assert len(calls) == 2 and torch.equal(got.points, flow.match(img0, img1, [[10.0, 12.0]]).points)
    with pytest.raises(TypeError, match="context must be a PairContext"):
        match_pair(dense, img0, img1, [[1.0, 1.0]], context={"category": "car"})



def test_match_pairs_is_match_pair_on_each_with_features_once_per_image(tiny, willow, count_features):
    from geocorr.methods.base import match_pair, match_pairs

    dense = geocorr.load("dinov2", **tiny["dinov2"][1])
    counting, calls = count_features(dense)
    a, b, c = (str(p) for p in willow[0][:3])
    pts = [[50.0, 60.0], [120.0, 80.0]]
    pairs = [(a, b, pts), (b, c, pts), (a, c, pts[:1]), (c, a, pts)]
    got = match_pairs(counting, pairs, batch_size=2)
    assert calls == [2, 1]  # 3 distinct images in batches of 2
    for (img0, img1, p), m in zip(pairs, got, strict=True):
        torch.testing.assert_close(m.points, dense.match(img0, img1, p).points, atol=1e-4, rtol=0)
    flow = geocorr.load("cyclecorr", **tiny["cyclecorr"][1])
    boxes = PairContext(boxes=((0, 0, 50, 50), (10, 10, 90, 90)))
    got = match_pairs(flow, pairs[:2], contexts=[boxes, None])
    assert torch.equal(got[0].points, match_pair(flow, a, b, pts, boxes).points)
    with pytest.raises(ValueError, match="contexts: expected one per pair"):
        match_pairs(flow, pairs, contexts=[None])
