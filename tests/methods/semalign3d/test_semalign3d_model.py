"""SemAlign3D behind geocorr.load, the depth model, saving/loading, the build command."""
import json
import math

import pytest
import torch

import geocorr
from geocorr.backbones import tiny_config
from geocorr.cli import main
from geocorr.methods.base import PairContext
from geocorr.methods.semalign3d import ClassRepresentation, DepthEstimator, DepthFiles
from geocorr.methods.semalign3d.alignment import AlignConfig, align_many, prepare_target
from geocorr.methods.semalign3d.depth import load_depth_file

from .conftest import FAST_BUILD, tiny_depth_config, training_view


def tiny_depth() -> DepthEstimator:
    from transformers import DepthAnythingForDepthEstimation

    return DepthEstimator(DepthAnythingForDepthEstimation(tiny_depth_config()), input_size=56)


def test_representation_round_trip(representation, tmp_path):
    path = representation.save(tmp_path / "rep.safetensors")
    loaded = ClassRepresentation.load(path)
    assert loaded.category == "synthetic" and loaded.keypoint_names == representation.keypoint_names
    for name in ("sparse", "dense", "dense_index", "dense_weights", "sparse_features", "front"):
        assert torch.equal(getattr(loaded, name), getattr(representation, name))
    for name in ("table", "cos_angle", "ratio", "tets", "tet"):
        assert torch.equal(getattr(loaded.prior, name), getattr(representation.prior, name))
    assert loaded.meta["num_views"] == 12


def test_representation_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="class representation: no such file"):
        ClassRepresentation.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a safetensors class representation"):
        ClassRepresentation.load(bad)


def test_depth_estimator_tiny_random_model():
    depth = tiny_depth()
    out = depth(torch.rand(3, 30, 45))
    # z = 1 - 0.3 d / max d (the authors' mapping) lies in [0.7, 1]
    assert out.shape == (30, 45) and (out >= 0.7 - 1e-6).all() and (out <= 1).all()
    with pytest.raises(ValueError, match="image: expected shape"):
        depth(torch.rand(30, 45))


def test_offline_depth_model_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"depth model 'depth-anything/no-such-model'.*unreachable.*depth=null"):
        DepthEstimator("depth-anything/no-such-model")


def test_depth_files_are_looked_up_by_image_name(tmp_path):
    import numpy as np

    np.save(tmp_path / "cat.npy", np.full((4, 5), 2.0, dtype=np.float32))
    files = DepthFiles(tmp_path)
    assert torch.equal(files(torch.zeros(3, 4, 5), tmp_path / "images" / "cat.jpg"), torch.full((4, 5), 2.0))
    with pytest.raises(ValueError, match="give the image as a file"):
        files(torch.zeros(3, 4, 5))
    with pytest.raises(FileNotFoundError, match=r"dog\.npy"):
        files(torch.zeros(3, 4, 5), tmp_path / "dog.jpg")
    with pytest.raises(FileNotFoundError, match="depth_dir: folder not found"):
        DepthFiles(tmp_path / "none")


def test_depth_file_checks(tmp_path):
    import numpy as np

    np.save(tmp_path / "d.npy", np.ones((4, 5), dtype=np.float32))
    assert load_depth_file(tmp_path / "d.npy", (4, 5)).shape == (4, 5)
    with pytest.raises(ValueError, match="does not match the image"):
        load_depth_file(tmp_path / "d.npy", (5, 4))
    with pytest.raises(FileNotFoundError, match="depth file not found"):
        load_depth_file(tmp_path / "none.npy", (4, 5))


@pytest.fixture(scope="module")
def tiny_setup(world, train_views):
    """A representation whose semantics come from a tiny random DINOv2 run on rendered feature images."""
    features = geocorr.load("dinov2", backbone=tiny_config(), image_size=56)
    views = []
    for view in train_views:
        image = view.features[:3].sigmoid()
        feats = features.features(image)
        views.append(training_view(view))
        views[-1] = type(views[-1])(feats.dense[0], feats.grids[0], view.depth, view.mask, view.keypoints,
                                    view.visible, keypoint_depth=view.world[:, 2])
    from geocorr.methods.semalign3d import build_representation

    return features, build_representation(views, "synthetic", conf=FAST_BUILD), train_views


def test_load_and_match_through_the_registry(tiny_setup):
    features, rep, views = tiny_setup
    model = geocorr.load("semalign3d", representation=rep, features=features, depth=tiny_depth(),
                         align={"steps": 3, "samples_per_focal": 1, "pixels": 32, "background_pixels": 32})
    img0, img1 = views[0].features[:3].sigmoid(), views[1].features[:3].sigmoid()
    query = views[0].keypoints[views[0].visible][:3]
    masks = PairContext(masks=(views[0].mask.numpy(), views[1].mask.numpy()))
    matches = model.match(img0, img1, query, masks)
    assert matches.points.shape == (3, 2) and matches.scores.shape == (3,)
    assert ((matches.points >= 0) & (matches.points <= 47)).all()
    assert matches.similarity.shape[0] == 3
    with pytest.raises(ValueError, match="outside"):
        model.match(img0, img1, [[100.0, 0.0]], masks)
    # a mask covering the whole image leaves no background pixel: still a finite alignment
    full = model.align_image(img0, mask=torch.ones(48, 48, dtype=torch.bool))
    assert torch.isfinite(full.alignment.sparse).all() and math.isfinite(full.alignment.loss)
    # without given masks: attention mask, and each image is aligned once
    first = model.align_image(img0)
    assert model.align_image(img0.clone()) is first and model.align_image(img1) is not first


def test_load_rejects_unknown_options_and_other_features(tiny_setup, representation):
    features, rep, _ = tiny_setup
    with pytest.raises(ValueError, match="unknown option"):
        geocorr.load("semalign3d", representation=rep, features=features, depth=None, steps=3)
    with pytest.raises(ValueError, match="unknown alignment option"):
        geocorr.load("semalign3d", representation=rep, features=features, depth=None, align={"step": 3})
    model = geocorr.load("semalign3d", representation=representation, features=features, depth=None)
    image = torch.rand(3, 48, 48)
    with pytest.raises(ValueError, match="channels"):
        model.align_image(image, mask=torch.ones(48, 48, dtype=torch.bool))


def test_cli_build_on_pf_willow(pf_willow_root, pretrained_vits14, tmp_path, capsys):
    from transformers import DepthAnythingForDepthEstimation

    DepthAnythingForDepthEstimation(tiny_depth_config()).save_pretrained(tmp_path / "depth")  # a local folder
    out = tmp_path / "duck.safetensors"
    code = main(["semalign3d", "build", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--split", "test",
                 "--category", "duck(S)", "--output", str(out), "--depth", str(tmp_path / "depth"),
                 "--max-images", "4", "--sparse-steps", "20", "--clusters", "40", "--method", "dinov2",
                 "--backbone", str(pretrained_vits14), "--image-size", "112"])
    assert code == 0, capsys.readouterr().err
    rep = ClassRepresentation.load(out)
    assert rep.category == "duck(S)" and rep.num_keypoints == 10 and rep.sparse_features.shape[1] == 384
    assert rep.meta["features"] == "dinov2" and len(rep.meta["focals"]) == 4

    # The class folder evaluates through `geocorr eval` like every method (category routed per pair).
    features_conf = json.dumps({"backbone": str(pretrained_vits14), "image_size": 112})
    code = main(["eval", "--method", "semalign3d", "--dataset", "pf-willow", "--root", str(pf_willow_root),
                 "--category", "duck(S)", "--max-pairs", "2", "--no-progress",
                 "--option", f"representation={tmp_path}", "--option", "features=dinov2",
                 "--option", f"features_conf={features_conf}", "--option", f"depth={tmp_path / 'depth'}",
                 "--option", 'align={"steps": 20}', "--out", str(tmp_path / "eval.json")])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["config"]["method_options"]["representation"] == str(tmp_path)
    assert result["stats"]["pairs"] == 2

    # the feature options as flags, the same way as for every method; depth=null is kept (no depth model:
    # were it dropped, the default hub id would be loaded and fail offline)
    code = main(["eval", "--method", "semalign3d", "--dataset", "pf-willow", "--root", str(pf_willow_root),
                 "--category", "duck(S)", "--max-pairs", "1", "--no-progress", "--backbone", str(pretrained_vits14),
                 "--image-size", "112", "--option", f"representation={out}", "--option", "features=dinov2",
                 "--option", "depth=null", "--option", 'align={"steps": 5}', "--out", str(tmp_path / "e2.json")])
    assert code == 0, capsys.readouterr().err
    # a class file of another backbone is refused, naming both
    code = main(["eval", "--method", "semalign3d", "--dataset", "pf-willow", "--root", str(pf_willow_root),
                 "--category", "duck(S)", "--max-pairs", "1", "--no-progress", "--backbone", "facebook/dinov2-small",
                 "--option", f"representation={out}", "--option", "features=dinov2", "--option", "depth=null"])
    assert code == 2
    assert "not with backbone 'facebook/dinov2-small'" in capsys.readouterr().err


def test_cli_build_unknown_category(pf_willow_root, tmp_path, capsys):
    code = main(["semalign3d", "build", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--split", "test",
                 "--category", "plane", "--output", str(tmp_path / "x.safetensors"), "--depth-dir", str(tmp_path)])
    assert code == 2
    assert "--category 'plane'" in capsys.readouterr().err


def test_class_file_of_another_feature_model_or_backbone_is_refused(representation, tmp_path):
    import dataclasses

    path = dataclasses.replace(representation, meta={**representation.meta, "features": "geoaware",
                                                     "backbone": None}).save(tmp_path / "cls.safetensors")
    with pytest.raises(ValueError, match=r"cls.safetensors: class file built with the features of 'geoaware', "
                                         r"not of features='dinov2'"):
        geocorr.load("semalign3d", representation=str(path), features="dinov2", depth=None)
    with pytest.raises(ValueError, match=r"built with backbone 'default'.*not with backbone 'facebook/dinov2-small'"):
        geocorr.load("semalign3d", representation=str(path), features="geoaware", backbone="facebook/dinov2-small",
                     depth=None)


def test_a_diverged_alignment_is_reported_and_the_others_go_on(world, representation, train_views):
    conf = AlignConfig(steps=5, pixels=32, background_pixels=32, samples_per_focal=1)
    gen = torch.Generator().manual_seed(0)
    good, bad = (prepare_target(representation, v.features, v.grid, v.mask, v.depth, conf, gen)
                 for v in train_views[:2])
    bad.sem_dense = torch.full_like(bad.sem_dense, float("nan"))  # its energy is NaN from the first step
    first, second = align_many(representation, [good, bad], conf, gen)
    assert not first.failed and torch.isfinite(first.sparse).all()
    assert second.failed and torch.isnan(second.sparse).all()


def test_match_with_a_diverged_alignment_gives_nan_points_and_names_the_image(tiny_setup, tmp_path):
    from PIL import Image

    features, rep, views = tiny_setup
    model = geocorr.load("semalign3d", representation=rep, features=features, depth=None,
                         align={"steps": 2, "samples_per_focal": 1, "pixels": 16, "background_pixels": 16,
                                "lr": float("inf")})
    paths = []
    for n in range(2):
        paths.append(tmp_path / f"img{n}.png")
        Image.fromarray((views[n].features[:3].sigmoid() * 255).byte().permute(1, 2, 0).numpy()).save(paths[-1])
    with pytest.warns(UserWarning, match="img0.png diverged"):
        matches = model.match(paths[0], paths[1], [[10.0, 10.0]])
    assert torch.isnan(matches.points).all() and (matches.scores == 0).all()
    assert str(paths[0]) in model.failures


def test_unreadable_depth_files_name_the_file(tmp_path):
    import numpy as np

    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj.npy: not a readable depth map"):
        load_depth_file(tmp_path / "obj.npy", (1,))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"bad.png: not a readable depth map"):
        load_depth_file(tmp_path / "bad.png", (4, 5))


def test_cli_build_offline_depth_model_is_a_one_line_error(pf_willow_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["semalign3d", "build", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--split", "test",
                 "--category", "duck(S)", "--output", str(tmp_path / "x.safetensors"), "--method", "dinov2",
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "depth model 'depth-anything/Depth-Anything-V2-Large-hf'" in err and "--depth-dir" in err
    assert not (tmp_path / "x.safetensors").exists()


def test_an_alignment_does_not_depend_on_its_batch_or_history(tiny_setup):
    features, rep, views = tiny_setup
    conf = {"align": {"steps": 3, "samples_per_focal": 1, "pixels": 16, "background_pixels": 16}, "batch_size": 4}
    img0, img1 = views[0].features[:3].sigmoid(), views[1].features[:3].sigmoid()
    together = geocorr.load("semalign3d", representation=rep, features=features, depth=None, **conf)
    alone = geocorr.load("semalign3d", representation=rep, features=features, depth=None, **conf)
    both = together.align_images([img0, img1])
    alone.align_image(img0)  # another history: img0 first, then img1 in a batch of its own
    single = alone.align_image(img1)
    assert torch.allclose(both[1].alignment.sparse, single.alignment.sparse, atol=1e-5)
