import pytest
import torch

import geocorr
from geocorr.backbones import tiny_config
from geocorr.datasets.base import PairDataset
from geocorr.datasets.pf_willow import load_pf_willow
from geocorr.evaluation.metrics import compute_metrics
from geocorr.evaluation.protocols import get_protocol
from geocorr.evaluation.runner import evaluate
from geocorr.methods.geoaware import GeoAwareTrainConfig, PoseVariantPairs
from geocorr.training import Trainer


@pytest.fixture(scope="module")
def willow_split(pf_willow_root):
    """Per sub-folder: pairs among its first 6 images (train), pairs among its last 4 (held out)."""
    willow = load_pf_willow(pf_willow_root)
    images = {}
    for p in willow.pairs:
        images.setdefault(p.category, set()).add(p.source.path)
    first = {c: sorted(paths)[:6] for c, paths in images.items()}

    def in_train(pair):
        return pair.source.path in first[pair.category] and pair.target.path in first[pair.category]

    def in_test(pair):
        return pair.source.path not in first[pair.category] and pair.target.path not in first[pair.category]

    train = PairDataset("pf-willow", "trn", [p for p in willow.pairs if in_train(p)], willow.keypoint_names)
    test = PairDataset("pf-willow", "tst", [p for p in willow.pairs if in_test(p)][::3], willow.keypoint_names)
    return train, test


def test_published_optimiser_defaults():
    conf = GeoAwareTrainConfig()
    assert (conf.lr, conf.weight_decay, conf.batch_size, conf.scheduler, conf.warmup) == (1.25e-3, 1e-3, 1, "onecycle", 0.3)


def test_training_on_pf_willow_beats_the_untrained_post_processor(willow_split, tmp_path):
    train, test = willow_split
    model = geocorr.load("geoaware", backbone=tiny_config(), zero_shot=False, image_size=112,
                         post_processor=dict(bottleneck_channels=32, out_channels=32, num_groups=8), window=5)
    # an 8×8 token grid on ~300-px images: a token spans ~0.2 of the keypoint box, so PCK is read at
    # α = 0.1 / 0.2 / 0.3 of the box (the published α levels are below this grid's resolution)
    protocol = get_protocol("geoaware", "pf-willow", alphas=(0.1, 0.2, 0.3))

    def pck(m):
        return compute_metrics(evaluate(m, test, progress=False), protocol)["pck"]["all"]

    before = pck(model)
    conf = GeoAwareTrainConfig(max_steps=40, lr=1e-2, val_every=0, checkpoint_every=0)
    result = Trainer(model, PoseVariantPairs(train, probabilities={}), conf, tmp_path, collate_fn=list,
                     progress=False).fit()
    after = pck(model.eval())
    assert torch.isfinite(torch.tensor(result["loss"]))
    assert (tmp_path / "geoaware_postprocessor.safetensors").is_file()  # the trainer's export
    # held-out pairs (images never trained on), 400 keypoints; measured: +4.25 and +5.25 points
    assert after[1] > before[1] + 2.0 and after[2] > before[2] + 2.0, (before, after)


def test_pose_variant_pairs_expand_and_flip(willow_split):
    train, _ = willow_split
    flips = {c: list(range(10)) for c in train.categories}  # PF-Willow has no left/right table
    data = PoseVariantPairs(train, {"single_flip": 1.0, "double_flip": 1.0, "self_flip": 0.25}, flips=flips)
    counts = data.variant_counts()
    assert counts["original"] == counts["single_flip"] == counts["double_flip"] == len(train)
    assert 0.1 * len(train) < counts["self_flip"] < 0.4 * len(train)
    assert len(data) == sum(counts.values())
    original, single = data[0], data[1]
    assert data.items[1] == (0, "single_flip")
    assert torch.equal(single.source, original.source.flip(-1)) and torch.equal(single.target, original.target)
    width = original.source.shape[-1]
    torch.testing.assert_close(single.source_keypoints[:, 0], width - 1 - original.source_keypoints[:, 0])


def test_pose_variant_pairs_need_a_flip_table(willow_split):
    train, _ = willow_split
    with pytest.raises(ValueError, match="'flip' permutation of category"):
        PoseVariantPairs(train)
    assert len(PoseVariantPairs(train, probabilities={})) == len(train)
    with pytest.raises(ValueError, match="normalisation"):
        PoseVariantPairs(train, probabilities={}, normalisation="box")
    with pytest.raises(ValueError, match="no pairs"):
        PoseVariantPairs(PairDataset("empty", "trn", []), probabilities={})


def test_cli_train_then_eval_the_trained_post_processor(pf_willow_root, tiny_backbone_dir, tmp_path, capsys):
    from geocorr.cli import main

    args = ["train", "--method", "geoaware", "--dataset", "pf-willow", "--root", str(pf_willow_root),
            "--out", str(tmp_path), "--backbone", str(tiny_backbone_dir), "--image-size", "56", "--max-steps", "2",
            "--per-category", "2", "--val-fraction", "0.2", "--val-pairs", "4", "--no-progress"]
    with pytest.warns(UserWarning, match="without pose-variant augmentation"):
        assert main(args) == 0
    assert "val_pck@0.10=" in capsys.readouterr().out
    weights = tmp_path / "geoaware_postprocessor.safetensors"
    assert weights.is_file()
    assert main(["eval", "--method", "geoaware", "--adapter", str(weights), "--backbone", str(tiny_backbone_dir),
                 "--image-size", "56", "--dataset", "pf-willow", "--root", str(pf_willow_root),
                 "--max-pairs", "3", "--protocol", "geoaware", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "protocol geoaware" in out and "(30 keypoints in 3 pairs)" in out


def test_build_trainer_keeps_per_category_pairs(willow_split, tmp_path):
    from geocorr.methods.geoaware.training import build_trainer

    train, _ = willow_split
    conf = GeoAwareTrainConfig(per_category=3, image_size=56, max_steps=1)
    with pytest.warns(UserWarning, match="no left/right flip tables"):
        trainer = build_trainer(train, tmp_path, conf, backbone=tiny_config(), progress=False,
                                post_processor=dict(bottleneck_channels=16, out_channels=32, num_groups=8))
    assert len(trainer.dataset) == 3 * len(train.categories)
