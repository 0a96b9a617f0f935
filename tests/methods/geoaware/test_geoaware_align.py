import numpy as np
import pytest
import torch

from geocorr.backbones import tiny_config
from geocorr.datasets.base import ImageAnnotation, Pair, PairDataset
from geocorr.evaluation.metrics import compute_metrics
from geocorr.evaluation.protocols import get_protocol
from geocorr.evaluation.runner import evaluate
from geocorr.grid import TokenGrid
from geocorr.methods.base import PairContext
from geocorr.methods.geoaware import load
from geocorr.methods.geoaware.align import (
    flip_distances,
    imd_mask,
    mirrored_queries,
    predict_image_pose,
)
from geocorr.methods.geoaware.augmentation import hflip_keypoints
from geocorr.methods.geoaware.pose import imd_features

FLIP = [1, 0, 3, 2, 4]  # two left/right pairs and a middle keypoint
ALL = np.ones(5, dtype=bool)


def make(**conf):
    torch.manual_seed(0)
    return load(backbone=tiny_config(), image_size=112, window=3, temperature=0.01, **conf)


@pytest.fixture(scope="module")
def model():
    return make(pose_align=True, flips={"toy": FLIP})


def scene(seed=0):
    """An asymmetric random texture (8-px cells), its mirror image and keypoints on both."""
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(3, 14, 14, generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    kps = torch.tensor([[20.5, 34.5], [90.5, 34.5], [34.5, 76.5], [76.5, 76.5], [48.5, 62.5]])
    target_kps, _ = hflip_keypoints(kps, torch.ones(5, dtype=torch.bool), 112, FLIP)
    return source, source.flip(-1), kps, target_kps


def context(ids=range(5), target_visible=ALL, **kw):
    return PairContext(category="toy", keypoint_ids=np.asarray(list(ids)), target_keypoints=np.zeros((5, 2)),
                       target_visible=np.asarray(target_visible), **kw)


def test_mirrored_queries_by_hand():
    points = torch.tensor([[10.0, 1.0], [30.0, 2.0], [50.0, 3.0], [70.0, 4.0]])
    ids = [0, 1, 2, 4]  # keypoint 3 is not visible in the source
    tvis = [True, True, True, True, False]  # keypoint 4 is not visible in the target
    use, query = mirrored_queries(points, ids, tvis, FLIP, width=100)
    # 0 <-> 1 both mutually visible: each queried at the mirrored position of its partner;
    # 2's partner 3 is not in the source; 4 (its own partner) is not in the target
    assert use.tolist() == [True, True, False, False]
    torch.testing.assert_close(query, torch.tensor([[69.0, 2.0], [89.0, 1.0], [50.0, 3.0], [70.0, 4.0]]))
    _, _ = mirrored_queries(points[:0], [], tvis, FLIP, width=100)
    with pytest.raises(ValueError, match="keypoint_ids"):
        mirrored_queries(points, [0, 1], tvis, FLIP, width=100)


def test_imd_mask_on_the_centred_input_by_hand():
    grid = TokenGrid(image_hw=(30, 60), content_hw=(28, 56), input_hw=(56, 56), patch=14, offset=(14, 0))
    mask = np.zeros((30, 60), dtype=bool)
    mask[:, :30] = True  # the left half of the image
    # IMD rows/cols sample input pixels floor(i · 56 / 4) = 0, 14, 28, 42; rows 0 and 42 lie on the
    # canvas (content rows 14..41); columns 0, 14 come from image columns 0, 15 (object), 28, 42
    # from columns 30, 45 (background)
    expected = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(imd_mask(mask, grid, 4), expected)
    assert torch.equal(imd_mask(None, grid, 4), torch.tensor([[0] * 4, [1] * 4, [1] * 4, [0] * 4], dtype=torch.bool))
    with pytest.raises(ValueError, match="object mask"):
        imd_mask(np.ones((10, 10), dtype=bool), grid, 4)


def test_imd_features_are_not_renormalised_after_the_resize():
    feat = torch.tensor([[[2.0, 0.0]], [[0.0, 3.0]]])  # two tokens, orthogonal
    out = imd_features(feat, size=4)
    # bilinear between the unit vectors (1, 0) and (0, 1): the two middle samples have weights
    # 0.75 / 0.25 -> norm sqrt(0.75² + 0.25²) = 0.79 (the old code re-normalised them to 1)
    assert out[:, 0, 1].norm().item() == pytest.approx((0.75 ** 2 + 0.25 ** 2) ** 0.5)
    assert out[:, 0, 0].norm().item() == pytest.approx(1.0)


def test_imd_picks_the_mirror_for_a_mirrored_target(model):
    source, target, _, _ = scene()
    f_src, f_tgt, f_same = model.features(source), model.features(target), model.features(source)
    c = f_src.dense.shape[1] // 2
    grids = (f_src.grids[0], f_tgt.grids[0])
    d, d_mirror = flip_distances(f_src.dense[0, :c], f_src.dense[0, c:], f_tgt.dense[0, :c], grids)
    assert d_mirror == pytest.approx(0.0, abs=1e-3) and d > 0.05
    d, d_mirror = flip_distances(f_src.dense[0, :c], f_src.dense[0, c:], f_same.dense[0, :c], grids)
    assert d == pytest.approx(0.0, abs=1e-3) and d_mirror > 0.05


def test_object_masks_restrict_the_imd_and_an_empty_one_turns_it_off(model):
    source, target, kps, _ = scene()
    left = np.zeros((112, 112), dtype=bool)
    left[:, :56] = True
    f_src, f_tgt = model.features(source), model.features(target)
    c = f_src.dense.shape[1] // 2
    grids = (f_src.grids[0], f_tgt.grids[0])
    d, d_mirror = flip_distances(f_src.dense[0, :c], f_src.dense[0, c:], f_tgt.dense[0, :c], grids, (left, left))
    # by hand: the source's left half (or the mirror's, whose mask is mirrored: its right half) against
    # the target's left half, on the 64² IMD grid (columns 0..31 of a 112-px square image)
    tgt = imd_features(f_tgt.dense[0, :c])[:, :, :32].flatten(1).T
    for feat, cols, value in ((f_src.dense[0, :c], slice(0, 32), d), (f_src.dense[0, c:], slice(32, 64), d_mirror)):
        src = imd_features(feat)[:, :, cols].flatten(1).T
        assert value == pytest.approx(torch.cdist(src, tgt).min(dim=1).values.mean().item(), rel=1e-5)
    empty = np.zeros((112, 112), dtype=bool)
    assert all(np.isnan(flip_distances(f_src.dense[0, :c], f_src.dense[0, c:], f_tgt.dense[0, :c], grids,
                                       (empty, left))))
    unaligned = make().match(source, target, kps).points
    torch.testing.assert_close(model.match(source, target, kps, context(masks=(empty, left))).points, unaligned)


def test_alignment_recovers_a_horizontally_flipped_target(model):
    source, target, kps, target_kps = scene()
    aligned = model.match(source, target, kps, context())
    assert (aligned.points - target_kps).norm(dim=1).max() < 3.0  # every keypoint, within 3 px
    plain = make().match(source, target, kps).points  # no alignment: left/right get confused
    assert (plain - target_kps).norm(dim=1).mean() > 10.0


def test_only_mutually_visible_partners_use_the_mirror(model):
    source, target, kps, target_kps = scene()
    plain = make().match(source, target, kps).points
    # keypoint 1 hidden in the target: 0 (partner 1) and 1 itself keep the unaligned prediction
    aligned = model.match(source, target, kps, context(target_visible=[True, False, True, True, True]))
    torch.testing.assert_close(aligned.points[:2], plain[:2])
    assert (aligned.points[2:] - target_kps[2:]).norm(dim=1).max() < 3.0
    # keypoint 3 not queried (not visible in the source): its partner 2 keeps the unaligned prediction
    aligned = model.match(source, target, kps[[0, 1, 2, 4]], context(ids=[0, 1, 2, 4]))
    torch.testing.assert_close(aligned.points[2], plain[2])


def test_identical_images_keep_the_unaligned_matches(model):
    source, _, kps, _ = scene()
    torch.testing.assert_close(model.match(source, source, kps, context()).points,
                               make().match(source, source, kps).points)


def test_pose_alignment_through_the_evaluation_runner(model, tmp_path):
    from PIL import Image

    source, target, kps, target_kps = scene()
    paths = []
    for name, img in (("a", source), ("b", target)):
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray((img.permute(1, 2, 0) * 255).round().byte().numpy()).save(paths[-1])
    anns = [ImageAnnotation(p, k.double().numpy(), ALL, (112, 112), "toy")
            for p, k in zip(paths, (kps, target_kps), strict=True)]
    dataset = PairDataset("toy", "test", [Pair(anns[0], anns[1], "toy")], symmetry={"toy": {"flip": FLIP}})
    fields = ("category", "keypoint_ids", "target_keypoints", "target_visible")
    predictions = evaluate(model, dataset, context=fields, progress=False)
    metrics = compute_metrics(predictions, get_protocol("geoaware", "toy"))
    assert metrics["pck"]["all"] == [100.0, 100.0, 100.0]


def test_global_pose_prediction_from_template_sets():
    model = make()
    facing, _, _, _ = scene(seed=5)
    other, _, _, _ = scene(seed=6)
    sets = [{"left": facing, "right": facing.flip(-1)}, {"left": other, "right": other.flip(-1)}]
    query = (facing + 0.02 * torch.randn(facing.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert predict_image_pose(model, query, sets) == "left"
    assert predict_image_pose(model, query.flip(-1), sets) == "right"


def test_bad_inputs(model):
    source, target, kps, _ = scene()
    with pytest.raises(ValueError, match="context fields"):
        model.match(source, target, kps)
    with pytest.raises(ValueError, match="no left/right flip table for category 'cat'"):
        model.match(source, target, kps, PairContext(category="cat", keypoint_ids=np.arange(5),
                                                     target_keypoints=np.zeros((5, 2)), target_visible=ALL))
    with pytest.raises(ValueError, match=r"flips\['toy'\]"):
        make(pose_align=True, flips={"toy": [0, 0, 1]})


def test_cli_eval_pose_align_on_a_spair_tree(tmp_path, tiny_backbone_dir, capsys):
    """``geocorr eval --method geoaware --pose-align``: the mirrored target is matched left-to-left."""
    import json

    from PIL import Image

    from geocorr.cli import main
    from geocorr.datasets.symmetry import symmetry_table

    source, target, _, _ = scene()
    ids = [0, 1, 4, 5, 8]  # right/left ear, right/left eye, mouth of SPair's cat
    kps = torch.tensor([[20.5, 34.5], [90.5, 34.5], [34.5, 76.5], [76.5, 76.5], [48.5, 62.5]])
    flip = torch.as_tensor(symmetry_table("spair", "cat")["flip"])
    full = torch.full((15, 2), float("nan"))
    full[ids] = kps
    mirrored, _ = hflip_keypoints(full.nan_to_num(0), torch.ones(15, dtype=torch.bool), 112, flip)
    root = tmp_path / "SPair-71k"
    for name, img, points in (("a", source, full), ("b", target, mirrored)):
        path = root / "JPEGImages" / "cat" / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img.permute(1, 2, 0) * 255).round().byte().numpy()).save(path, quality=100)
        folder = root / "ImageAnnotation" / "cat"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps({
            "filename": f"{name}.jpg", "image_width": 112, "image_height": 112, "bndbox": [0, 0, 111, 111],
            "kps": {str(i): points[i].tolist() for i in ids}}))
    (root / "PairAnnotation" / "test").mkdir(parents=True)
    (root / "PairAnnotation" / "test" / "000001-a-b:cat.json").write_text(json.dumps(
        {"pair_id": 1, "src_imname": "a.jpg", "trg_imname": "b.jpg", "category": "cat",
         "kps_ids": [str(i) for i in ids]}))
    masks = tmp_path / "masks"
    for name in "ab":  # object masks (white = object) in the --mask-dir layout: <path under root>.png
        (masks / "JPEGImages" / "cat").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((112, 112), 255, dtype=np.uint8)).save(masks / "JPEGImages" / "cat" / f"{name}.png")
    results = {}
    for flag in ([], ["--pose-align"], ["--pose-align", "--mask-dir", str(masks)]):
        out = tmp_path / f"result{len(flag)}.json"
        code = main(["eval", "--method", "geoaware", "--backbone", str(tiny_backbone_dir), "--image-size", "112",
                     "--option", "window=3", "--option", "temperature=0.01", "--dataset", "spair",
                     "--root", str(root), "--protocol", "geoaware", "--no-progress", "--out", str(out), *flag])
        assert code == 0, capsys.readouterr().err
        results[len(flag)] = json.loads(out.read_text())["metrics"]["pck"]["all"]
    assert results[1][-1] == results[3][-1] == 100.0 and results[0][-1] < 60.0, results
