import pytest
import torch

import geocorr
from geocorr.backbones import tiny_config
from geocorr.datasets.base import ImageAnnotation, Pair, PairDataset
from geocorr.evaluation.metrics import compute_metrics
from geocorr.evaluation.protocols import get_protocol
from geocorr.methods.geoaware.align import (
    choose_pose,
    evaluate_aligned,
    match_aligned,
    posed_features,
    predict_image_pose,
)
from geocorr.methods.geoaware.augmentation import hflip_keypoints

FLIP = [1, 0, 3, 2, 4]  # two left/right pairs and a middle keypoint
NAN = float("nan")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return geocorr.load("geoaware", backbone=tiny_config(), image_size=112, window=3, temperature=0.01)


def scene(seed=0):
    """An asymmetric random texture (8-px cells), its mirror image and keypoints on both."""
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(3, 14, 14, generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    kps = torch.tensor([[20.5, 34.5], [90.5, 34.5], [34.5, 76.5], [76.5, 76.5], [48.5, 62.5]])
    target_kps, _ = hflip_keypoints(kps, torch.ones(5, dtype=torch.bool), 112, FLIP)
    return source, source.flip(-1), kps, target_kps


def test_imd_is_zero_for_identical_images_and_picks_the_mirror(model):
    source, target, _, _ = scene()
    feats = posed_features(model, source, ("identity", "hflip"))
    pose, distances = choose_pose(feats, model.features(source))
    assert pose == "identity" and distances["identity"] == pytest.approx(0.0, abs=1e-3)
    pose, distances = choose_pose(feats, model.features(target))
    assert pose == "hflip" and distances["hflip"] == pytest.approx(0.0, abs=1e-3)
    assert distances["identity"] > 0.05


def test_alignment_recovers_a_horizontally_flipped_target(model):
    source, target, kps, target_kps = scene()
    aligned = match_aligned(model, source, target, kps, FLIP)
    assert aligned.pose == "hflip"
    assert (aligned.points - target_kps).norm(dim=1).max() < 3.0  # every keypoint, within 3 px
    plain = model.match(source, target, kps).points  # no alignment: left/right get confused
    assert (plain - target_kps).norm(dim=1).mean() > 10.0


def test_keypoints_without_a_mirrored_counterpart_fall_back_to_the_source(model):
    source, target, kps, _ = scene()
    kps = kps.clone()
    kps[1] = NAN  # keypoint 0's mirror partner is not annotated; keypoint 1 is not visible
    aligned = match_aligned(model, source, target, kps, FLIP)
    assert aligned.pose == "hflip"
    assert aligned.points[1].isnan().all() and aligned.scores[1].isnan()
    plain = model.match(source, target, kps[[0]])
    torch.testing.assert_close(aligned.points[0], plain.points[0])
    assert torch.isfinite(aligned.points[2:]).all()


def test_rotation_pose_keeps_ids(model):
    source, _, kps, _ = scene(seed=3)
    target = torch.rot90(source, 1, dims=(1, 2))
    aligned = match_aligned(model, source, target, kps, poses=("identity", "rot90", "rot180"))
    assert aligned.pose == "rot90"
    expected = torch.stack([kps[:, 1], 111 - kps[:, 0]], dim=1)
    assert (aligned.points - expected).norm(dim=1).max() < 3.0


def test_global_pose_prediction_from_template_sets(model):
    facing, _, _, _ = scene(seed=5)
    other, _, _, _ = scene(seed=6)
    sets = [{"left": facing, "right": facing.flip(-1)}, {"left": other, "right": other.flip(-1)}]
    query = (facing + 0.02 * torch.randn(facing.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert predict_image_pose(model, query, sets) == "left"
    assert predict_image_pose(model, query.flip(-1), sets) == "right"


def test_evaluate_aligned_on_a_dataset(model, tmp_path):
    from PIL import Image

    source, target, kps, target_kps = scene()
    paths = []
    for name, img in (("a", source), ("b", target)):
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray((img.permute(1, 2, 0) * 255).round().byte().numpy()).save(paths[-1])
    vis = torch.ones(5, dtype=torch.bool).numpy()
    anns = [ImageAnnotation(p, k.double().numpy(), vis, (112, 112), "toy") for p, k in zip(paths, (kps, target_kps))]
    dataset = PairDataset("toy", "test", [Pair(anns[0], anns[1], "toy")], symmetry={"toy": {"flip": FLIP}})
    predictions = evaluate_aligned(model, dataset, progress=False)
    metrics = compute_metrics(predictions, get_protocol("geoaware", "toy"))
    assert metrics["pck"]["all"] == [100.0, 100.0, 100.0]


def test_bad_inputs(model):
    source, target, kps, _ = scene()
    with pytest.raises(ValueError, match="needs the keypoint flip permutation"):
        match_aligned(model, source, target, kps)
    with pytest.raises(ValueError, match="must include 'identity'"):
        match_aligned(model, source, target, kps, FLIP, poses=("hflip",))
    with pytest.raises(ValueError, match="unknown pose"):
        match_aligned(model, source, target, kps, FLIP, poses=("identity", "mirror"))
    with pytest.raises(ValueError, match="keypoints"):
        match_aligned(model, source, target, kps[:, 0], FLIP)
    dataset = PairDataset("toy", "test", [])
    dataset.pairs.append(Pair(*[ImageAnnotation("x.png", kps.numpy(), kps[:, 0].numpy() > 0, (112, 112), "toy")] * 2,
                              "toy"))
    with pytest.raises(ValueError, match="flip permutation of category 'toy'"):
        evaluate_aligned(model, dataset, progress=False)
