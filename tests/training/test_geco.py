"""GECO training on real PF-Willow pairs with a tiny random DINOv2 (hidden 32, 2 blocks)."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from geocorr.backbones import tiny_config
from geocorr.cli import main
from geocorr.datasets import load_dataset
from geocorr.methods.geco.data import GecoPairs, attach_masks, collate, keypoint_hull_tokens
from geocorr.methods.geco.training import GecoTrainConfig, build_trainer
from geocorr.training.augment import AugmentConfig, augment, crop_keypoints, flip_keypoints
from geocorr.training.splits import split_by_images

PLAIN = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=0.0, jitter_p=0.0, blur_p=0.0, solarize_p=0.0)


@pytest.fixture(scope="module")
def willow(pf_willow_root):
    return load_dataset("pf-willow", pf_willow_root)


def _few(dataset, indices=(0, 1, 90, 91)):
    return replace(dataset, pairs=[dataset[i] for i in indices])


def test_crop_and_flip_keypoints_by_hand():
    kps = np.array([[10.0, 20.0], [99.0, 5.0], [np.nan, np.nan]])
    vis = np.array([True, True, False])
    # box [10, 20) × [20, 40) resized to 20 × 40: x' = (x + 0.5 - 10) * 2 - 0.5, y' = (y + 0.5 - 20) * 2 - 0.5
    out, v = crop_keypoints(kps, vis, (10, 20, 20, 40), (20, 40))
    np.testing.assert_allclose(out[0], [0.5, 0.5])
    assert v.tolist() == [True, False, False] and np.isnan(out[1]).all()
    flipped, fv = flip_keypoints(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([True, False, True]),
                                 10, np.array([1, 0, 2]))
    np.testing.assert_allclose(flipped, [[6.0, 4.0], [8.0, 2.0], [4.0, 6.0]])  # ids 0 <-> 1 swapped
    assert fv.tolist() == [False, True, True]


def test_augment_is_reproducible_and_moves_keypoints_with_pixels():
    from PIL import Image

    img = np.zeros((60, 80, 3), np.uint8)
    img[30, 40] = 255  # one white pixel at (x, y) = (40, 30)
    kps, vis = np.array([[40.0, 30.0]]), np.array([True])
    conf = AugmentConfig(crop_scale=(0.7, 0.7), crop_ratio=(1.0, 1.0), flip=1.0, jitter_p=0.0, blur_p=0.0, solarize_p=0.0)
    outs = [augment(Image.fromarray(img), kps, vis, (160, 160), conf, torch.Generator().manual_seed(3),
                    permutation=np.array([0])) for _ in range(2)]
    assert np.array_equal(np.asarray(outs[0][0]), np.asarray(outs[1][0]))
    image, moved, v, _ = outs[0]
    y, x = np.unravel_index(np.asarray(image)[..., 0].argmax(), (160, 160))
    assert v[0] and abs(moved[0, 0] - x) <= 1.5 and abs(moved[0, 1] - y) <= 1.5


def test_keypoint_hull_tokens():
    square = np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])
    mask = keypoint_hull_tokens(square, (5, 5))
    expected = np.zeros((5, 5), bool)
    expected[1:4, 1:4] = True
    assert np.array_equal(mask, expected)
    line = keypoint_hull_tokens(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), (3, 3))
    assert np.array_equal(line, np.eye(3, dtype=bool))
    assert not keypoint_hull_tokens(np.zeros((0, 2)), (3, 3)).any()


def test_samples_put_keypoints_on_their_tokens(willow):
    data = GecoPairs(_few(willow), 112, 14, PLAIN, per_category=None)
    sample = data.sample(0, torch.Generator().manual_seed(0))
    pair, _ = data.pairs[0]
    w, h = pair.source.size
    x, y = pair.source.keypoints[0]
    col, row = int((x + 0.5) * 112 / w // 14), int((y + 0.5) * 112 / h // 14)
    assert sample["source_tokens"][0].item() == row * 8 + col
    assert sample["source_visible"].all() and sample["source_foreground"].shape == (64,)
    assert sample["source_foreground"][sample["source_tokens"]].all()  # hull holds the keypoints
    batch = collate([sample, {**sample, **{k: sample[k][:7] for k in ("source_tokens", "target_tokens",
                                                                     "source_visible", "target_visible", "twin")}}])
    assert batch["keypoint_mask"].sum(1).tolist() == [10, 7] and batch["twin"][1, 7:].tolist() == [7, 8, 9]


def test_split_by_images_is_disjoint(willow):
    train, val = split_by_images(willow, 0.3, seed=0)
    seen = {str(a.path) for p in train for a in (p.source, p.target)}
    held = {str(a.path) for p in val for a in (p.source, p.target)}
    assert not seen & held and len(train) == 10 * 7 * 6 and len(val) == 10 * 3 * 2
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_images(willow, 1.5)


def test_loss_falls_on_real_pairs(willow, tmp_path):
    conf = GecoTrainConfig(image_size=112, batch_size=2, max_steps=16, lr=3e-2, log_every=1, checkpoint_every=0,
                           augment=PLAIN)
    build_trainer(_few(willow), tmp_path, conf, backbone=tiny_config(), progress=False).fit()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert np.mean(losses[-4:]) < 0.85 * np.mean(losses[:4])
    assert (tmp_path / "adapter.safetensors").is_file()


def test_resume_is_bit_exact_with_augmentations(willow, tmp_path):
    conf = GecoTrainConfig(image_size=56 * 2, batch_size=2, max_steps=4, lr=1e-2, checkpoint_every=2)

    def lora(trainer):
        return torch.cat([p.detach().flatten() for p in trainer.model.trainable_parameters()])

    straight = build_trainer(_few(willow), tmp_path / "a", conf, backbone=tiny_config(), progress=False)
    straight.fit()
    first = build_trainer(_few(willow), tmp_path / "b", replace(conf), backbone=tiny_config(), progress=False)
    first.total_steps = 2  # stands in for a kill after the step-2 checkpoint
    first.fit()
    resumed = build_trainer(_few(willow), tmp_path / "b", conf, backbone=tiny_config(), progress=False)
    resumed.fit(resume=True)
    assert torch.equal(lora(straight), lora(resumed))
    assert not torch.equal(lora(straight), lora(first))


def test_cli_trains_validates_and_refuses_another_config(willow, pf_willow_root, tiny_backbone_dir, tmp_path, capsys):
    args = ["train", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--out", str(tmp_path),
            "--backbone", str(tiny_backbone_dir), "--image-size", "56", "--batch-size", "2", "--max-steps", "2",
            "--per-category", "2", "--val-fraction", "0.2", "--val-pairs", "4", "--no-progress"]
    assert main(args) == 0
    assert "val_pck@0.10=" in capsys.readouterr().out
    assert {"adapter.safetensors", "checkpoint.pt", "log.jsonl"} <= {p.name for p in tmp_path.iterdir()}
    assert main(args + ["--resume", "--lr", "0.5"]) == 2
    assert "another config" in capsys.readouterr().err
    assert main(args + ["--dataset", "pf-willow"]) == 2
    assert "one --root" in capsys.readouterr().err


def test_bad_datasets(willow, tmp_path):
    src = willow[0].source
    broken = replace(willow[0], target=replace(willow[0].target, keypoints=src.keypoints[:3],
                                               visible=src.visible[:3]))
    with pytest.raises(ValueError, match="10 vs 3 keypoints"):
        GecoPairs(replace(willow, pairs=[broken]), 112, 14, PLAIN)
    hidden = replace(src, keypoints=src.keypoints * np.nan, visible=np.zeros(10, bool))
    with pytest.raises(ValueError, match="no pair with a visible keypoint"):
        GecoPairs(replace(willow, pairs=[replace(willow[0], source=hidden, target=hidden)]), 112, 14, PLAIN)
    with pytest.raises(ValueError, match="multiple of the patch"):
        GecoPairs(willow, 100, 14, PLAIN)


def test_masks_give_the_foreground(willow, pf_willow_root, tmp_path):
    from PIL import Image

    few = _few(willow, (0,))
    for ann in (few[0].source, few[0].target):
        w, h = ann.size
        mask = np.zeros((h, w), np.uint8)
        mask[: h // 2, : w // 2] = 255  # the top-left quarter
        target = tmp_path / Path(ann.path).relative_to(pf_willow_root).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(target)
    sample = GecoPairs(attach_masks(few, pf_willow_root, tmp_path), 112, 14, PLAIN).sample(0, torch.Generator())
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:4, :4] = True
    assert torch.equal(sample["source_foreground"].reshape(8, 8), expected)
    with pytest.raises(FileNotFoundError, match="mask of"):
        attach_masks(_few(willow, (0, 100)), pf_willow_root, tmp_path)


def test_joint_datasets_keep_their_own_twins(willow):
    a, b = _few(willow, (0, 1)), _few(willow, (90,))
    b = replace(b, name="mirrored", symmetry={b[0].category: {"twin": [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]}})
    flip = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=1.0, jitter_p=0.0, blur_p=0.0,
                         solarize_p=0.0)
    data = GecoPairs([a, b], 112, 14, flip, per_category=None)
    assert len(data) == 3
    plain = data.sample(0, torch.Generator().manual_seed(0))  # no table: no flip, no twins
    assert plain["twin"].tolist() == list(range(10))
    mirrored = data.sample(2, torch.Generator().manual_seed(0))
    assert mirrored["twin"].tolist()[:3] == [1, 0, 2]
    pair, _ = data.pairs[2]
    w, h = pair.source.size
    x, y = pair.source.keypoints[0]  # keypoint 0 becomes id 1 at the mirrored place
    col = int((111 - ((x + 0.5) * 112 / w - 0.5) + 0.5) // 14)
    row = int(((y + 0.5) * 112 / h) // 14)
    assert mirrored["source_tokens"][1].item() == row * 8 + col


def _tiny_sam_config():
    from transformers import SamConfig
    from transformers.models.sam.configuration_sam import SamMaskDecoderConfig, SamPromptEncoderConfig, SamVisionConfig

    vision = SamVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, output_channels=32,
                             global_attn_indexes=[0], mlp_dim=64, num_pos_feats=16)
    decoder = SamMaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2, iou_head_hidden_dim=32)
    return SamConfig(vision_config=vision.to_dict(), prompt_encoder_config=SamPromptEncoderConfig(hidden_size=32).to_dict(),
                     mask_decoder_config=decoder.to_dict())


def test_sam_masks_are_written_once_in_the_mask_layout(willow, pf_willow_root, tmp_path):
    from PIL import Image

    from geocorr.training.sam_masks import sam_masks

    few = _few(willow, (0,))
    torch.manual_seed(0)
    assert sam_masks(few, pf_willow_root, tmp_path, _tiny_sam_config(), progress=False) == 2
    for ann in (few[0].source, few[0].target):
        mask = np.asarray(Image.open(tmp_path / Path(ann.path).relative_to(pf_willow_root).with_suffix(".png")))
        assert mask.shape == (ann.size[1], ann.size[0]) and set(np.unique(mask)) <= {0, 255}
    assert sam_masks(few, pf_willow_root, tmp_path, _tiny_sam_config(), progress=False) == 0
    assert attach_masks(few, pf_willow_root, tmp_path)[0].source.meta["mask"].is_file()


def test_cli_sam_needs_a_mask_dir(pf_willow_root, tmp_path, capsys):
    assert main(["train", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--out", str(tmp_path),
                 "--sam", "facebook/sam-vit-huge"]) == 2
    assert "--sam needs --mask-dir" in capsys.readouterr().err


def test_twin_table_gives_negatives_in_the_training_step(willow):
    from geocorr.methods.geco import load
    from geocorr.methods.geco.training import GecoTraining

    pairs = _few(willow, (90, 91))
    twin = [1, 0, 3, 2, 4, 5, 6, 7, 8, 9]  # keypoints 0 <-> 1 and 2 <-> 3 are symmetric
    pairs = replace(pairs, symmetry={pairs[0].category: {"twin": twin}})
    data = GecoPairs(pairs, 112, 14, PLAIN, per_category=None)
    batch = collate([data.sample(i, torch.Generator().manual_seed(i)) for i in range(2)])
    model = GecoTraining(load(backbone=tiny_config(), adapter=None, image_size=112, merge=False))
    out = model.training_step(batch)
    assert out["num_neg"].item() > 0 and out["loss_neg"].item() > 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in model.trainable_parameters())
