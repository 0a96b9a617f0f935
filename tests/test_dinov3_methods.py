"""A DINOv3 backbone (patch 16, 4 registers, RoPE) through every method and face.

The backbone is a tiny random DINOv3 ViT (:func:`geocorr.backbones.dinov3.tiny_config`: width 32,
2 blocks) saved in transformers format, i.e. a user's ``--backbone DIR``. No real DINOv3 weights
are available here, so what is checked is geometry and plumbing: token grids at patch 16, the
class and register tokens dropped, which weights train, files that round-trip, and that every face
gives the method's own ``match``; never the quality of the matches.
"""
import csv
from dataclasses import replace

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from PIL import Image

import geocorr
from geocorr.cli import main
from geocorr.methods.base import PairContext

CATEGORY = "car(G)"
SIZE = 64  # backbone input side: 4×4 tokens of 16 px
PREFIX = 1 + 4  # class token + 4 registers


@pytest.fixture(scope="module")
def dinov3_dir(tmp_path_factory):
    """A tiny random DINOv3 ViT/16 (seed 0) saved as a ``--backbone DIR`` folder."""
    from transformers import AutoModel

    from geocorr.backbones.dinov3 import tiny_config

    folder = tmp_path_factory.mktemp("tiny-dinov3")
    torch.manual_seed(0)
    AutoModel.from_config(tiny_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def willow(pf_willow_root):
    """The first four PF-Willow car(G) images and their keypoints (pixel-centre: file values − 1)."""
    images = sorted((pf_willow_root / CATEGORY).glob("*.png"))[:4]
    keypoints = [scipy.io.loadmat(p.with_suffix(".mat"))["pts_coord"].T.astype(np.float64) - 1 for p in images]
    return images, keypoints


def _argmax_matches(f0: torch.Tensor, f1: torch.Tensor, grid1, cells: list[tuple[int, int]],
                    content_only: bool = False) -> torch.Tensor:
    """By hand: the centre (image pixels) of the target token most cosine-similar to each source token
    (row, col) of dense features (1, C, h, w); ``content_only``: among tokens overlapping the image."""
    target = F.normalize(f1[0].flatten(1), dim=0)  # (C, h1 w1)
    keep = torch.ones(grid1.grid_hw, dtype=torch.bool)
    if content_only:
        r0, r1, c0, c1 = grid1.content_tokens
        keep[:] = False
        keep[r0:r1, c0:c1] = True
    out = []
    for r, c in cells:
        sim = F.normalize(f0[0, :, r, c], dim=0) @ target
        best = int(sim.masked_fill(~keep.flatten(), -2.0).argmax())
        out.append(grid1.grid_to_image(torch.tensor([[best % grid1.grid_hw[1], best // grid1.grid_hw[1]]],
                                                    dtype=torch.float32))[0])
    return torch.stack(out)


def _token_centre(grid, r: int, c: int) -> torch.Tensor:
    return grid.grid_to_image(torch.tensor([[float(c), float(r)]]))


# ---------------------------------------------------------------- zero-shot (the `dinov2` method)

def test_zero_shot_features_and_matches_on_non_square_images(dinov3_dir):
    model = geocorr.load("dinov2", backbone=str(dinov3_dir), image_size=SIZE, resize="keep_aspect",
                         upsample="none")
    torch.manual_seed(1)
    img0, img1 = torch.rand(3, 50, 90), torch.rand(3, 90, 40)
    feats = model.features([img0, img1])
    # long side 64; short side 50 · 64 / 90 = 35.6 -> 32 (2 tokens), 40 · 64 / 90 = 28.4 -> 32
    assert [g.patch for g in feats.grids] == [16, 16]
    assert [g.input_hw for g in feats.grids] == [(32, 64), (64, 32)]
    assert [g.grid_hw for g in feats.grids] == [(2, 4), (4, 2)]
    f0, f1 = (model.features([im]).dense for im in (img0, img1))
    assert f0.shape == (1, 32, 2, 4) and f1.shape == (1, 32, 4, 2)
    # the features are the last block's normed patch tokens: class token and 4 registers dropped
    x, _ = model.backbone.preprocess(img0)
    tokens = model.backbone.model(pixel_values=x[None]).last_hidden_state
    assert tokens.shape[1] == PREFIX + 2 * 4
    assert torch.allclose(f0, tokens[:, PREFIX:].transpose(1, 2).reshape(1, 32, 2, 4), atol=1e-5)
    # match() of token centres = the cosine argmax computed here
    cells = [(0, 0), (1, 3), (0, 2)]
    query = torch.cat([_token_centre(model.features([img0]).grids[0], r, c) for r, c in cells])
    got = model.match(img0, img1, query)
    expected = _argmax_matches(f0, f1, feats.grids[1], cells)
    assert torch.allclose(got.points, expected, atol=1e-4)
    assert got.points.shape == (3, 2) and torch.isfinite(got.scores).all()


@pytest.mark.parametrize("side,rounded", [(70, 64), (79, 64), (47, 32), (10, 16)])
def test_stretch_sizes_not_a_multiple_of_16_are_rounded_down(dinov3_dir, side, rounded):
    model = geocorr.load("dinov2", backbone=str(dinov3_dir), image_size=side, upsample="none")
    reference = geocorr.load("dinov2", backbone=str(dinov3_dir), image_size=rounded, upsample="none")
    image = torch.rand(3, 45, 77)
    feats = model.features([image])
    assert feats.grids[0].input_hw == (rounded, rounded)
    assert feats.grids[0].grid_hw == (rounded // 16, rounded // 16)
    assert torch.equal(feats.dense, reference.features([image]).dense)
    assert model.match(image, image, [[10.0, 20.0]]).points.shape == (1, 2)


def test_official_cell_conventions_follow_patch_16(dinov3_dir):
    # GECO's / GeoAware's cell conventions (geocorr.conventions) on a DINOv3 grid: 80×100 image
    # stretched to 64×64 = 4×4 tokens of 16 px
    from geocorr.conventions import containing_token, token_corner

    model = geocorr.load("dinov2", backbone=str(dinov3_dir), image_size=SIZE)
    _, grid = model.backbone.preprocess(torch.rand(3, 80, 100))
    # token (column 1, row 2): top-left corner floor(16 · 100 / 64) = 25, floor(32 · 80 / 64) = 40 (edges)
    assert token_corner(torch.tensor([[1, 2]]), grid).tolist() == [[24.5, 39.5]]
    # a point at edge coordinates (25, 40) lies in that token; (24, 40) in the one to its left
    assert containing_token(torch.tensor([[24.5, 39.5], [23.5, 39.5]]), grid).tolist() == [[1, 2], [0, 2]]
    # token centre: input pixel 16 j + 8 (edges) -> (16 + 8) · 100 / 64 = 37.5, (32 + 8) · 80 / 64 = 50
    assert grid.grid_to_image(torch.tensor([[1.0, 2.0]])).tolist() == [[37.0, 49.5]]


# ---------------------------------------------------------------- GECO: LoRA training and files

def _lora_names(model) -> set[str]:
    return {n for n, _ in model.named_parameters() if "lora_" in n}


def test_geco_fresh_lora_sits_on_query_and_value(dinov3_dir):
    model = geocorr.load("geco", backbone=str(dinov3_dir), weights=None, merge=False, image_size=SIZE)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == _lora_names(model)
    projections = sorted({n.split(".attention.")[1].split(".")[0] for n in trainable})
    assert projections == ["q_proj", "v_proj"]  # DINOv3's query/value projections, not k_proj/o_proj
    assert len(trainable) == 2 * 2 * 2  # 2 blocks × (q, v) × (A, B)


@pytest.fixture(scope="module")
def geco_step(dinov3_dir, pf_willow_root, tmp_path_factory):
    """One optimiser step of GECO's training recipe on DINOv3 (4 PF-Willow pairs, 64 px, batch 2)."""
    from geocorr.datasets import load_dataset
    from geocorr.training.augment import AugmentConfig
    from geocorr.training.recipes.geco import GecoTrainConfig, build_trainer

    willow = load_dataset("pf-willow", pf_willow_root)
    few = replace(willow, pairs=[willow[i] for i in (0, 1, 90, 91)])
    plain = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(0.01, 100.0), crop_size=None, flip=0.0, jitter_p=0.0,
                          blur_p=0.0, solarize_p=0.0)
    conf = GecoTrainConfig(image_size=SIZE, batch_size=2, max_steps=1, per_category=None, checkpoint_every=0,
                           augment=plain)
    out = tmp_path_factory.mktemp("geco-dinov3")
    trainer = build_trainer(few, out, conf, backbone=str(dinov3_dir), progress=False)
    assert trainer.dataset.patch == 16 and trainer.dataset.grid.grid_hw == (4, 4)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    return trainer, result, changed, out


def test_geco_training_step_changes_only_lora(geco_step):
    trainer, result, changed, _ = geco_step
    assert result["step"] == 1 and np.isfinite(result["loss"]) and result["loss"] > 0
    lora_b = {n for n in trainer.model.state_dict() if "lora_B" in n}
    assert len(lora_b) == 4  # 2 blocks × (q_proj, v_proj)
    # lora_B starts at zero, so lora_A gets no gradient at the first step: exactly the B factors move
    assert changed == lora_b


def test_geco_dinov3_adapter_round_trip_and_family_check(geco_step, dinov3_dir, tiny_backbone_dir, willow, capsys):
    from geocorr.methods.geco.adapter import read_lora_file

    trainer, _, _, out = geco_step
    path = out / "adapter.safetensors"
    assert read_lora_file(path).architecture == "dinov3"
    trained = trainer.model.matcher.eval()
    loaded = geocorr.load("geco", backbone=str(dinov3_dir), weights=str(path), image_size=SIZE)  # merged
    fresh = geocorr.load("geco", backbone=str(dinov3_dir), weights=None, image_size=SIZE)
    image = str(willow[0][0])
    ours, theirs = trained.features([image]).dense, loaded.features([image]).dense
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(theirs, fresh.features([image]).dense, atol=1e-5)  # the LoRA is in there
    with pytest.raises(ValueError, match=r"LoRA for a DINOV3 backbone, but the backbone is DINOV2"):
        geocorr.load("geco", backbone=str(tiny_backbone_dir), weights=str(path), image_size=56)
    (src, trg, *_), _ = willow
    code = main(["match", str(src), str(trg), "--point", "10,10", "--method", "geco",
                 "--backbone", str(tiny_backbone_dir), "--weights", str(path), "--image-size", "56"])
    err = capsys.readouterr().err
    assert code == 2 and "DINOV3" in err and "DINOV2" in err and "Traceback" not in err


def test_released_dinov2_lora_is_refused_on_dinov3(dinov3_dir, tiny_backbone_dir, tmp_path):
    dinov2 = geocorr.load("geco", backbone=str(tiny_backbone_dir), weights=None, merge=False, image_size=56)
    path = tmp_path / "dinov2-lora.safetensors"
    dinov2.save_adapter(path)
    with pytest.raises(ValueError, match=r"LoRA for a DINOV2 backbone, but the backbone is DINOV3 .*patch 16"):
        geocorr.load("geco", backbone=str(dinov3_dir), weights=str(path), image_size=SIZE)


def test_geco_trainer_rounds_the_default_size_to_patch_16(dinov3_dir, pf_willow_root, tmp_path):
    from geocorr.datasets import load_dataset
    from geocorr.training.recipes.geco import GecoTrainConfig, build_trainer

    willow = load_dataset("pf-willow", pf_willow_root)
    few = replace(willow, pairs=[willow[0]])
    # the published 518 (37×37 tokens at patch 14) becomes 512 = 32×32 tokens at 16, as the backbone rounds
    trainer = build_trainer(few, tmp_path, GecoTrainConfig(max_steps=1, batch_size=1), backbone=str(dinov3_dir),
                            progress=False)
    assert trainer.dataset.image_size == 512 and trainer.dataset.grid.grid_hw == (32, 32)
    assert trainer.model.matcher.backbone.input_size((1, 1))[1] == (512, 512)
    sample = trainer.dataset.sample(0, torch.Generator().manual_seed(0), 0)
    assert sample["source_image"].shape == (3, 512, 512) and sample["source_foreground"].shape == (32 * 32,)


# ---------------------------------------------------------------- GeoAware

@pytest.mark.parametrize("layer", [-1, 1])
def test_geoaware_zero_shot_reads_the_chosen_block_without_norm(dinov3_dir, layer):
    # published: the last block (0-based 11 of ViT-B/14's 12: layer=-1) without the final norm, 840 px;
    # here the last (-1) or the first (1) of 2 blocks at 72 px (not a multiple of 16 either: -> 64, 4×4 tokens)
    model = geocorr.load("geoaware", backbone=str(dinov3_dir), image_size=72, layer=layer, inference="argmax",
                         upsample="none")
    torch.manual_seed(2)
    img0, img1 = torch.rand(3, 40, 64), torch.rand(3, 64, 48)
    feats0, feats1 = model.features([img0]), model.features([img1])
    grid0, grid1 = feats0.grids[0], feats1.grids[0]
    assert grid0.input_hw == (64, 64) and grid0.patch == 16 and grid0.content_hw == (40, 64)
    assert grid0.offset == (12, 0)  # centred on the canvas
    x, _ = model.backbone.preprocess(img0)
    out = model.backbone.model(pixel_values=x[None], output_hidden_states=True)
    assert len(out.hidden_states) == 3  # patch embeddings + 2 blocks
    block = out.hidden_states[layer][:, PREFIX:].transpose(1, 2).reshape(1, 32, 4, 4)
    assert torch.allclose(feats0.dense, F.normalize(block, dim=1), atol=1e-5)
    normed = out.last_hidden_state[:, PREFIX:].transpose(1, 2).reshape(1, 32, 4, 4)  # after DINOv3's `norm`
    assert not torch.allclose(feats0.dense, F.normalize(normed, dim=1), atol=1e-3)
    assert grid0.content_tokens == (0, 4, 0, 4)  # rows 0 and 3 only partly: their centres lie on the canvas
    cells = [(1, 0), (2, 3)]  # centres at canvas rows 24, 40 = image rows 12, 28
    query = torch.cat([_token_centre(grid0, r, c) for r, c in cells])
    got = model.match(img0, img1, query).points
    expected = _argmax_matches(feats0.dense, feats1.dense, grid1, cells, content_only=True)
    assert torch.allclose(got, expected, atol=1e-4)
    assert torch.isfinite(got).all()


def test_geoaware_fresh_post_processor_on_dinov3(dinov3_dir, tmp_path):
    widths = {"bottleneck_channels": 8, "out_channels": 16, "num_groups": 4}
    model = geocorr.load("geoaware", backbone=str(dinov3_dir), image_size=SIZE, layer=1, zero_shot=False,
                         post_processor=widths).eval()
    assert model.post_processor.config.in_channels == (32,)  # the DINOv3 width
    image = torch.rand(3, 48, 64)
    feats = model.features([image])
    assert feats.dense.shape == (1, 16, 4, 4) and torch.isfinite(feats.dense).all()
    points = model.match(image, torch.rand(3, 64, 64), [[5.0, 5.0], [60.0, 40.0]]).points
    assert points.shape == (2, 2) and torch.isfinite(points).all()
    assert ((points >= -0.5) & (points <= 63.5)).all()
    path = model.save_weights(tmp_path)
    again = geocorr.load("geoaware", backbone=str(dinov3_dir), image_size=SIZE, layer=1, weights=str(path))
    assert torch.allclose(again.features([image]).dense, feats.dense, atol=1e-6)


def test_geoaware_training_step_on_dinov3_changes_only_the_post_processor(dinov3_dir, pf_willow_root, tmp_path):
    from geocorr.datasets import load_dataset
    from geocorr.training.recipes.geoaware import GeoAwareTrainConfig, build_trainer

    willow = load_dataset("pf-willow", pf_willow_root)
    few = replace(willow, pairs=[willow[i] for i in (0, 1)])
    # 72 px stands for the published 840 (not a multiple of 16 either): the backbone rounds to 64
    conf = GeoAwareTrainConfig(image_size=72, max_steps=1, per_category=None, checkpoint_every=0, val_every=0)
    with pytest.warns(UserWarning, match="no left/right flip tables"):
        trainer = build_trainer(few, tmp_path, conf, backbone=str(dinov3_dir), progress=False,
                                post_processor={"bottleneck_channels": 8, "out_channels": 16, "num_groups": 4})
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    assert result["step"] == 1 and np.isfinite(result["loss"])
    changed = {k for k, v in trainer.model.state_dict().items() if not torch.equal(before[k], v)}
    assert changed and all(k.startswith("post_processor.") for k in changed), changed
    assert not any(k.startswith("backbone.") for k in changed)
    feats = geocorr.load("geoaware", backbone=str(dinov3_dir), image_size=72,
                         weights=str(tmp_path / "geoaware_postprocessor.safetensors")).features([torch.rand(3, 40, 60)])
    assert feats.grids[0].input_hw == (64, 64) and feats.dense.shape == (1, 16, 4, 4)


# ---------------------------------------------------------------- match CLI and demo faces

FACES = {"dinov2": ([], {}), "geco": (["--option", "weights=null"], {"weights": None}),
         "geoaware": (["--option", "layer=1"], {"layer": 1})}


@pytest.mark.parametrize("method", sorted(FACES))
def test_match_cli_and_demo_give_the_methods_match(method, dinov3_dir, willow, capsys):
    from geocorr.demo.app import PointMatcher

    extra, conf = FACES[method]
    model = geocorr.load(method, backbone=str(dinov3_dir), image_size=SIZE, **conf)
    (src, trg, *_), (kp0, *_) = willow
    query = kp0[:2]
    expected = model.match(str(src), str(trg), query)
    code = main(["match", str(src), str(trg), *[a for p in query for a in ("--point", f"{p[0]},{p[1]}")],
                 "--method", method, "--backbone", str(dinov3_dir), "--image-size", str(SIZE), *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    printed = [line.split("->")[1].split("score")[0].strip(" ()") for line in out.out.splitlines() if "->" in line]
    points = np.array([[float(v) for v in p.split(",")] for p in printed])
    np.testing.assert_allclose(points, expected.points.numpy(), atol=0.051)  # printed with one decimal
    source, target = (np.asarray(Image.open(p).convert("RGB")) for p in (src, trg))
    clicked = PointMatcher(model)(source, target, [tuple(query[0])], twin=False)
    np.testing.assert_allclose(clicked.points, expected.points[:1].numpy(), atol=1e-4)


# ---------------------------------------------------------------- SemAlign3D

@pytest.fixture(scope="module")
def semalign3d_class(build_semalign3d_class, dinov3_dir, tmp_path_factory):
    """A car(G) class representation built by the CLI from tiny DINOv3 features and a tiny depth model."""
    return build_semalign3d_class(dinov3_dir, tmp_path_factory.mktemp("semalign3d-dinov3"), CATEGORY, SIZE)


def test_semalign3d_with_dinov3_features(semalign3d_class, dinov3_dir, willow, capsys):
    import json

    from safetensors import safe_open

    align = {"steps": 3, "samples_per_focal": 1, "pixels": 32, "background_pixels": 32}
    options = {"backbone": str(dinov3_dir), "image_size": SIZE, "weights": str(semalign3d_class),
               "features": "dinov2", "depth": None, "align": align}
    with safe_open(str(semalign3d_class), "pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in ("sparse_features", "dense_features")}
        meta = json.loads(f.metadata()["geocorr"])["meta"]
    # the class representation holds DINOv3 features (width 32) of 10 keypoints and 40 clusters
    assert shapes == {"sparse_features": [10, 32], "dense_features": [40, 32]}
    assert meta["backbone"] == str(dinov3_dir) and meta["num_views"] == 4
    (src, trg, *_), (kp0, *_) = willow
    query = kp0[:3]
    context = PairContext(category=CATEGORY)
    expected = geocorr.load("semalign3d", **options).match(str(src), str(trg), query, context)
    assert expected.points.shape == (3, 2) and torch.isfinite(expected.points).all()
    code = main(["match", str(src), str(trg), *[a for p in query for a in ("--point", f"{p[0]},{p[1]}")],
                 "--method", "semalign3d", "--backbone", str(dinov3_dir), "--image-size", str(SIZE),
                 "--weights", str(semalign3d_class), "--option", "features=dinov2", "--option", "depth=null",
                 "--option", f"align={json.dumps(align)}", "--category", CATEGORY])
    out = capsys.readouterr()
    assert code == 0, out.err
    printed = [line.split("->")[1].split("score")[0].strip(" ()") for line in out.out.splitlines() if "->" in line]
    points = np.array([[float(v) for v in p.split(",")] for p in printed])
    np.testing.assert_allclose(points, expected.points.numpy(), atol=0.051)  # printed with one decimal


# ---------------------------------------------------------------- tracker

@pytest.fixture(scope="module")
def video(willow, tmp_path_factory):
    """Three PF-Willow car(G) images as 112×84 frames of a video, and the frames as decoded."""
    pytest.importorskip("av")
    from geocorr.demo.video import VideoWriter, read_frames

    path = tmp_path_factory.mktemp("video") / "cars.mp4"
    with VideoWriter(path, fps=5, crf=10) as writer:
        for p in willow[0][:3]:
            writer.write(np.asarray(Image.open(p).convert("RGB").resize((112, 84))))
    return path, list(read_frames(path))


@pytest.mark.parametrize("method,extra,conf", [("dinov2", [], {}),
                                              ("geco", ["--option", "weights=null"], {"weights": None}),
                                              ("geoaware", ["--option", "inference=argmax"], {"inference": "argmax"})])
def test_track_three_frames(method, extra, conf, dinov3_dir, video, tmp_path, capsys):
    path, frames = video
    table = tmp_path / "tracks.csv"
    points = [(30.0, 40.0), (70.0, 20.0)]
    code = main(["track", str(path), *[a for p in points for a in ("--point", f"{p[0]},{p[1]}")],
                 "--csv", str(table), "--no-progress", "--method", method, "--backbone", str(dinov3_dir),
                 "--image-size", str(SIZE), "--option", "upsample=none", *extra])
    assert code == 0, capsys.readouterr().err
    with table.open() as f:
        rows = list(csv.DictReader(f))
    tracked = np.array([[float(r["x"]), float(r["y"])] for r in rows]).reshape(3, 2, 2)
    model = geocorr.load(method, backbone=str(dinov3_dir), image_size=SIZE, upsample="none", **conf)
    expected = np.stack([model.match(frames[0], frame, points).points.numpy() for frame in frames])
    expected[0] = points
    np.testing.assert_allclose(tracked, expected, atol=0.006)  # written with two decimals
    if method == "geoaware":  # padded, not stretched: the centres below are those of a stretched frame
        return
    # frames 1, 2 land on token centres of the 4×4 grid of 16 px over 112×84: x = (16 j + 8) · 112/64 − 0.5
    centres_x = (16 * np.arange(4) + 8) * 112 / 64 - 0.5
    centres_y = (16 * np.arange(4) + 8) * 84 / 64 - 0.5
    assert np.abs(tracked[1:, :, 0, None] - centres_x).min(-1).max() < 0.006
    assert np.abs(tracked[1:, :, 1, None] - centres_y).min(-1).max() < 0.006


# ---------------------------------------------------------------- ONNX export

@pytest.fixture(scope="module")
def random_dinov3_lora(random_geco_lora, dinov3_dir, tmp_path_factory):
    """A GECO LoRA on the tiny DINOv3 with non-zero random factors (a fresh one changes nothing)."""
    return random_geco_lora(str(dinov3_dir), SIZE, tmp_path_factory.mktemp("lora") / "dinov3-lora.safetensors")


@pytest.mark.parametrize("method", ["dinov2", "geco"])
def test_onnx_export_and_check_with_dinov3(method, dinov3_dir, random_dinov3_lora, willow, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from geocorr.deploy.onnx import OnnxMatcher

    images = [str(p) for p in willow[0][:2]]
    out = tmp_path / "dinov3.onnx"
    extra, conf = (["--weights", str(random_dinov3_lora)], {"weights": str(random_dinov3_lora)}) \
        if method == "geco" else ([], {})
    code = main(["export", "--method", method, "--backbone", str(dinov3_dir), "--image-size", str(SIZE), *extra,
                 "--out", str(out), "--check", *images])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "features (B, 32, H/16, W/16)" in printed.out and printed.out.count("max |Δ| / max |f|") == 2
    model = geocorr.load(method, backbone=str(dinov3_dir), image_size=SIZE, **conf)
    ours, theirs = model.features(images).dense, OnnxMatcher(out).features(images).dense
    assert ours.shape == (2, 32, 4, 4) and (ours - theirs).abs().max() <= 1e-4 * ours.abs().max()
    if method == "geco":  # the merged LoRA is in the graph: plain DINOv3 features differ
        plain = geocorr.load("dinov2", backbone=str(dinov3_dir), image_size=SIZE).features(images).dense
        assert (plain - theirs).abs().max() > 0.1 * plain.abs().max()


def test_dynamic_onnx_export_follows_rope_to_other_sizes(dinov3_dir, tmp_path):
    # RoPE positions are computed from the input size inside the graph: a dynamic export traced at
    # one size must give PyTorch's features at other, non-square sizes
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from geocorr.deploy.onnx import OnnxMatcher, export_onnx

    model = geocorr.load("dinov2", backbone=str(dinov3_dir), image_size=SIZE, resize="keep_aspect")
    path = export_onnx(model, tmp_path / "dynamic.onnx", dynamic=True, method="dinov2")
    exported = OnnxMatcher(path)
    torch.manual_seed(3)
    for shape, grid_hw in (((3, 50, 90), (2, 4)), ((3, 90, 40), (4, 2)), ((3, 64, 64), (4, 4))):
        image = torch.rand(*shape)
        ours, theirs = model.features([image]), exported.features([image])
        assert ours.grids == theirs.grids and ours.grids[0].grid_hw == grid_hw
        assert (ours.dense - theirs.dense).abs().max() <= 1e-4 * ours.dense.abs().max()


# ---------------------------------------------------------------- eval

@pytest.mark.parametrize("method,extra,conf", [("dinov2", [], {}),
                                              ("geco", ["--option", "weights=null"], {"weights": None}),
                                              ("geoaware", [], {})])
def test_eval_two_pf_willow_pairs(method, extra, conf, dinov3_dir, pf_willow_root, tmp_path, capsys):
    from geocorr.evaluation.predictions import Predictions

    saved = tmp_path / "predictions.json"
    code = main(["eval", "--method", method, "--backbone", str(dinov3_dir), "--image-size", str(SIZE), *extra,
                 "--dataset", "pf-willow", "--root", str(pf_willow_root), "--category", CATEGORY,
                 "--max-pairs", "2", "--protocol", "geocorr", "--no-progress", "--save-predictions", str(saved)])
    assert code == 0, capsys.readouterr().err
    pairs = Predictions.load(saved).pairs
    assert len(pairs) == 2
    model = geocorr.load(method, backbone=str(dinov3_dir), image_size=SIZE, **conf)
    for pair in pairs:
        visible = np.asarray(pair.source_visible, bool)
        expected = model.match(pair.source, pair.target, np.asarray(pair.source_keypoints)[visible])
        np.testing.assert_allclose(np.asarray(pair.predicted)[visible], expected.points.numpy(), atol=1e-4)


def test_onnx_export_keeps_the_positional_debiasing(dinov3_dir, willow, tmp_path, capsys):
    # INSID3 de-biasing (debias_components) needs an SVD of the blank image's features per input size;
    # ONNX has no SVD: a fixed-size export stores the basis, a dynamic one is refused in one line
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from geocorr.backbones.debias import positional_basis
    from geocorr.deploy.onnx import OnnxMatcher

    images = [str(p) for p in willow[0][:2]]
    out = tmp_path / "debiased.onnx"
    model_args = ["--method", "dinov2", "--backbone", str(dinov3_dir), "--image-size", str(SIZE),
                  "--option", "debias_components=4"]
    assert main(["export", *model_args, "--out", str(out), "--check", *images]) == 0, capsys.readouterr().err
    model = geocorr.load("dinov2", backbone=str(dinov3_dir), image_size=SIZE, debias_components=4)
    ours, theirs = model.features(images).dense, OnnxMatcher(out).features(images).dense
    assert (ours - theirs).abs().max() <= 1e-4 * ours.abs().max()
    # the stored features are de-biased: nothing left along the blank image's 4 positional directions
    blank = ((torch.zeros(3, 1, 1) - model.backbone.mean.cpu()) / model.backbone.std.cpu()).expand(3, SIZE, SIZE)
    plain = geocorr.load("dinov2", backbone=str(dinov3_dir), image_size=SIZE)
    basis = positional_basis(plain.backbone(blank[None])[0], 4)
    assert torch.einsum("ck,bchw->bkhw", basis, theirs).abs().max() < 1e-4
    assert torch.einsum("ck,bchw->bkhw", basis, F.normalize(plain.features(images).dense, dim=1)).abs().max() > 0.1
    capsys.readouterr()
    assert main(["export", *model_args, "--out", str(tmp_path / "dynamic.onnx"), "--dynamic"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "debias_components" in errors[0] and "no --dynamic" in errors[0]
    assert "Traceback" not in err
