"""GECO's training recipe: real PF-Willow pairs, generated SPair-71k / PF-Pascal / AP-10K trees, a tiny
random DINOv2 (hidden 32, 2 blocks). Official facts: reginehartwig/geco @ 03c8314 (see the recipe's docstrings)."""
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from geocorr.backbones import tiny_config
from geocorr.cli import main
from geocorr.datasets import load_dataset
from geocorr.methods.geco import load
from geocorr.methods.geco.loss import KeypointTokens, loss_entries
from geocorr.training.augment import (
    AugmentConfig,
    adjust_hue,
    augment,
    crop_keypoints,
    flip_keypoints,
    gaussian_blur,
    random_crop_box,
)
from geocorr.training.recipes.geco import (
    GecoPairs,
    GecoSource,
    GecoTrainConfig,
    GecoTraining,
    attach_masks,
    build_trainer,
    collate,
    geco_source,
    keypoint_hull_tokens,
)
from geocorr.training.recipes.geco.sources import ap10k_padded_keypoints
from geocorr.training.splits import split_by_images

# no random change: the whole-image crop never fits a random ratio, and the fallback keeps any ratio in range
PLAIN = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(0.01, 100.0), crop_size=None, flip=0.0, jitter_p=0.0,
                      blur_p=0.0, solarize_p=0.0)


@pytest.fixture(scope="module")
def willow(pf_willow_root):
    return load_dataset("pf-willow", pf_willow_root)


def _few(dataset, indices=(0, 1, 90, 91)):
    return replace(dataset, pairs=[dataset[i] for i in indices])


def _pairs(dataset, augment_conf=PLAIN, per_category=None, num_keypoints=10, **kw):
    return GecoPairs([GecoSource(dataset, num_keypoints)], 112, 14, augment_conf, per_category=per_category, **kw)


def _image(path, size=(64, 48), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _spair_tree(root, shared_data, names_table=True):
    """SPair-71k with two bicycle images (keypoints 0/1 = front/back wheel, twins but not flips)."""
    kps = {"a": {0: [8, 30], 1: [50, 30], 4: [30, 10]}, "b": {0: [52, 34], 1: [10, 34], 4: [30, 8]}}
    for name, points in kps.items():
        _image(root / "JPEGImages" / "bicycle" / f"{name}.jpg", seed=len(name) + ord(name))
        record = {"filename": f"{name}.jpg", "image_width": 64, "image_height": 48, "category": "bicycle",
                  "bndbox": [2, 3, 60, 44], "kps": {str(k): v for k, v in points.items()}}
        (root / "ImageAnnotation" / "bicycle").mkdir(parents=True, exist_ok=True)
        (root / "ImageAnnotation" / "bicycle" / f"{name}.json").write_text(json.dumps(record))
    (root / "PairAnnotation" / "trn").mkdir(parents=True)
    pair = {"pair_id": 1, "src_imname": "a.jpg", "trg_imname": "b.jpg", "category": "bicycle", "kps_ids": []}
    (root / "PairAnnotation" / "trn" / "000001-a-b:bicycle.json").write_text(json.dumps(pair))
    if names_table:
        shutil.copy(shared_data / "spair-meta" / "spair_keypoint_names.csv", root / "spair_keypoint_names.csv")
    return root


def _pf_pascal_tree(root):
    """PF-Pascal with one cat pair whose .mat files list 3 keypoints, the second invisible in the source."""
    folder = root / "PF-dataset-PASCAL"
    _image(folder / "JPEGImages" / "a.jpg", size=(60, 40), seed=1)
    _image(folder / "JPEGImages" / "b.jpg", size=(50, 70), seed=2)
    (folder / "Annotations" / "cat").mkdir(parents=True)
    savemat(folder / "Annotations" / "cat" / "a.mat", {"kps": np.array([[11.0, 21.0], [np.nan, np.nan], [41.0, 31.0]])})
    savemat(folder / "Annotations" / "cat" / "b.mat", {"kps": np.array([[6.0, 16.0], [26.0, 36.0], [36.0, 56.0]])})
    (root / "train_pairs_pf_pascal.csv").write_text(
        "source_image,target_image,class,XA,YA,XB,YB\n"
        "PF-dataset-PASCAL/JPEGImages/a.jpg,PF-dataset-PASCAL/JPEGImages/b.jpg,8,11;41,21;31,6;36,16;56\n")
    return root


# --- augmentation (official src/dataset/augmentations.py) -------------------------------------------------

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


def test_augment_defaults_are_the_official_values():
    c = AugmentConfig()
    assert (c.crop_scale, c.crop_ratio, c.crop_size, c.flip) == ((0.5, 0.98), (0.9, 1.1), 400, 0.5)
    assert (c.brightness, c.contrast, c.saturation, c.hue, c.jitter_p) == (0.4, 0.4, 0.2, 0.1, 0.8)
    assert (c.blur_p, c.blur_kernel, c.blur_sigma, c.solarize_p) == (0.9, 9, (0.1, 2.0), 0.2)
    assert GecoTrainConfig().augment == c


def test_crop_is_resized_to_400_then_to_the_training_size():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8))
    conf = AugmentConfig(flip=0.0, jitter_p=0.0, blur_p=0.0, solarize_p=0.0)
    out = np.asarray(augment(img, np.zeros((0, 2)), np.zeros(0, bool), (518, 518), conf,
                             torch.Generator().manual_seed(5))[0])
    box = random_crop_box(90, 70, conf.crop_scale, conf.crop_ratio, torch.Generator().manual_seed(5))
    two_step = img.resize((400, 400), Image.Resampling.BILINEAR, box=box).resize((518, 518), Image.Resampling.BILINEAR)
    assert np.array_equal(out, np.asarray(two_step))
    assert not np.array_equal(out, np.asarray(img.resize((518, 518), Image.Resampling.BILINEAR, box=box)))


def test_crop_box_falls_back_to_the_central_crop_clamped_to_the_ratio():
    # 100 × 10: no 0.5–0.98 share of the area with ratio 0.9–1.1 fits -> h = 10, w = round(10 · 1.1) = 11, centred
    assert random_crop_box(100, 10, (0.5, 0.98), (0.9, 1.1), torch.Generator().manual_seed(0)) == (44, 0, 55, 10)


def test_blur_is_a_9_tap_gaussian():
    impulse = np.zeros((21, 21, 3), np.uint8)
    impulse[10, 10] = 255
    out = np.asarray(gaussian_blur(Image.fromarray(impulse), 9, 1.0))[..., 0]
    s = sum(math.exp(-x * x / 2) for x in range(-4, 5))
    assert out[10, 10] == round(255 / s**2)
    assert out[10, 14] == round(255 * math.exp(-8) / s**2) and out[10, 15] == 0  # 4 px reach, nothing at 5
    assert out[8, 9] == round(255 * math.exp(-2) * math.exp(-0.5) / s**2)


def test_hue_shift_turns_red_green():
    red = Image.new("RGB", (2, 2), (255, 0, 0))
    r, g, b = np.asarray(adjust_hue(red, 1 / 3))[0, 0]  # hue byte 0 + int(85.0) -> about 120°
    assert g == 255 and b == 0 and r < 16


def test_augment_is_reproducible_and_moves_keypoints_with_pixels():
    img = np.zeros((60, 80, 3), np.uint8)
    img[30, 40] = 255  # one white pixel at (x, y) = (40, 30)
    kps, vis = np.array([[40.0, 30.0]]), np.array([True])
    conf = AugmentConfig(crop_scale=(0.7, 0.7), crop_ratio=(1.0, 1.0), crop_size=None, flip=1.0, jitter_p=0.0,
                         blur_p=0.0, solarize_p=0.0)
    outs = [augment(Image.fromarray(img), kps, vis, (160, 160), conf, torch.Generator().manual_seed(3),
                    permutation=np.array([0])) for _ in range(2)]
    assert np.array_equal(np.asarray(outs[0][0]), np.asarray(outs[1][0]))
    image, moved, v, _ = outs[0]
    y, x = np.unravel_index(np.asarray(image)[..., 0].argmax(), (160, 160))
    assert v[0] and abs(moved[0, 0] - x) <= 1.5 and abs(moved[0, 1] - y) <= 1.5


# --- samples ---------------------------------------------------------------------------------------------

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
    data = _pairs(_few(willow))
    sample = data.sample(0, torch.Generator().manual_seed(0))
    pair, _ = data.pair(0)
    w, h = pair.source.size
    x, y = pair.source.keypoints[0]
    col, row = int((x + 0.5) * 112 / w // 14), int((y + 0.5) * 112 / h // 14)
    assert sample["source_tokens"][0].item() == row * 8 + col
    assert sample["source_visible"].all() and sample["source_foreground"].shape == (64,)
    assert sample["source_foreground"][sample["source_tokens"]].all()  # hull holds the keypoints
    assert sample["num_keypoints"].item() == 10
    batch = collate([sample, {**sample, **{k: sample[k][:7] for k in ("source_tokens", "target_tokens",
                                                                     "source_visible", "target_visible", "twin")}}])
    assert batch["keypoint_mask"].sum(1).tolist() == [10, 7] and batch["twin"][1, 7:].tolist() == [7, 8, 9]


def test_each_epoch_takes_the_next_slice_of_one_permutation(willow):
    one = _few(willow, range(5))  # 5 pairs of one category
    data = _pairs(one, per_category=2)
    assert len(data) == 2
    position = {id(p): i for i, p in enumerate(one.pairs)}
    stream = [position[id(data.pair(slot, epoch)[0])] for epoch in range(3) for slot in range(2)]
    assert sorted(stream[:5]) == [0, 1, 2, 3, 4]  # epochs 0, 1 and half of 2 walk one permutation
    assert set(stream[:2]).isdisjoint(stream[2:4])  # epoch 1 sees 2 new pairs (not the first 2 again)
    again = _pairs(one, per_category=2)
    assert [position[id(again.pair(s, e)[0])] for e in range(3) for s in range(2)] == stream  # seeded
    assert len(_pairs(one, per_category=None)) == 5


def test_training_sees_a_new_slice_every_epoch(willow, tmp_path):
    one = _few(willow, range(4))  # 4 pairs of one category, 1 per epoch, batch 1: 4 epochs of 1 step
    conf = GecoTrainConfig(image_size=112, batch_size=1, max_steps=4, per_category=1, checkpoint_every=0,
                           augment=PLAIN)
    trainer = build_trainer(one, tmp_path, conf, backbone=tiny_config(), progress=False)
    seen, pair = [], trainer.dataset.pair
    trainer.dataset.pair = lambda index, epoch: seen.append(epoch) or pair(index, epoch)
    trainer.fit()
    assert seen == [0, 1, 2, 3]
    position = {id(p): i for i, p in enumerate(one.pairs)}
    assert sorted(position[id(pair(0, e)[0])] for e in seen) == [0, 1, 2, 3]  # every pair once, none twice


def test_split_by_images_is_disjoint(willow):
    train, val = split_by_images(willow, 0.3, seed=0)
    seen = {str(a.path) for p in train for a in (p.source, p.target)}
    held = {str(a.path) for p in val for a in (p.source, p.target)}
    assert not seen & held and len(train) == 10 * 7 * 6 and len(val) == 10 * 3 * 2
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_images(willow, 1.5)


def test_masks_give_the_foreground(willow, pf_willow_root, tmp_path):
    few = _few(willow, (0,))
    for ann in (few[0].source, few[0].target):
        w, h = ann.size
        mask = np.zeros((h, w), np.uint8)
        mask[: h // 2, : w // 2] = 255  # the top-left quarter
        target = tmp_path / Path(ann.path).relative_to(pf_willow_root).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(target)
    sample = _pairs(attach_masks(few, pf_willow_root, tmp_path)).sample(0, torch.Generator())
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:4, :4] = True
    assert torch.equal(sample["source_foreground"].reshape(8, 8), expected)
    with pytest.raises(FileNotFoundError, match="mask of"):
        attach_masks(_few(willow, (0, 100)), pf_willow_root, tmp_path)


def test_joint_datasets_keep_their_own_twins(willow):
    a, b = _few(willow, (0, 1)), _few(willow, (90,))
    b = replace(b, name="mirrored", symmetry={b[0].category: {"twin": [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]}})
    flip = replace(PLAIN, flip=1.0)
    data = GecoPairs([GecoSource(a, 10), GecoSource(b, 10)], 112, 14, flip, per_category=None)
    assert len(data) == 3
    plain = data.sample(0, torch.Generator().manual_seed(0))  # no table: no flip, no twins
    assert plain["twin"].tolist() == list(range(10))
    mirrored = data.sample(2, torch.Generator().manual_seed(0))
    assert mirrored["twin"].tolist()[:3] == [1, 0, 2]
    pair, _ = data.pair(2)
    w, h = pair.source.size
    x, y = pair.source.keypoints[0]  # keypoint 0 becomes id 1 at the mirrored place
    col = int((111 - ((x + 0.5) * 112 / w - 0.5) + 0.5) // 14)
    row = int(((y + 0.5) * 112 / h) // 14)
    assert mirrored["source_tokens"][1].item() == row * 8 + col


# --- datasets as GECO trains on them ----------------------------------------------------------------------

def test_spair_negatives_come_from_the_twin_table_and_mass_from_30(shared_data, tmp_path):
    spair = load_dataset("spair", _spair_tree(tmp_path / "SPair-71k", shared_data), split="trn")
    source = geco_source(spair)
    assert source.num_keypoints == 30 and source.augment and spair[0].source.num_keypoints == 14
    data = GecoPairs([source], 112, 14, PLAIN, per_category=None)
    batch = collate([data.sample(0, torch.Generator().manual_seed(0))])
    s, t = batch["source_tokens"][0], batch["target_tokens"][0]
    neg = loss_entries((1, 65, 65), KeypointTokens.from_batch(batch))["neg"]
    # twin: front wheel (0) <-> back wheel (1); `flip` keeps them (it only swaps left/right), so
    # these negatives exist only because GECO's M− uses `twin`; the middle handlebar (4) has none
    assert sorted(zip(neg[1].tolist(), neg[2].tolist(), strict=True)) == sorted([(s[0].item(), t[1].item()),
                                                                   (s[1].item(), t[0].item())])
    model = GecoTraining(load(backbone=tiny_config(), adapter=None, image_size=112, merge=False))
    seen = {}
    model.ot.register_forward_pre_hook(lambda module, args: seen.update(log_a=args[1]))
    out = model.training_step(batch)
    assert out["num_neg"].item() == 2 and torch.isfinite(out["loss"])
    # object mass with SPair's padded count: 3 visible keypoints -> dustbin 0.9 − 0.9 · 4 / 31
    assert seen["log_a"][0, -1].exp().item() == pytest.approx(0.9 - 0.9 * 4 / 31)


def test_spair_tree_without_the_names_table_is_refused(shared_data, tmp_path):
    spair = load_dataset("spair", _spair_tree(tmp_path / "SPair-71k", shared_data, names_table=False), split="trn")
    with pytest.raises(FileNotFoundError, match=r"spair_keypoint_names\.csv"):
        geco_source(spair)
    (tmp_path / "SPair-71k" / "spair_keypoint_names.csv").write_text("not,the,table\n")
    with pytest.raises(ValueError, match=r"spair_keypoint_names\.csv: not SPair-71k's keypoint-name table"):
        geco_source(spair)


def test_cli_names_the_missing_names_table(shared_data, tiny_backbone_dir, tmp_path, capsys):
    root = _spair_tree(tmp_path / "SPair-71k", shared_data, names_table=False)
    assert main(["train", "--dataset", "spair", "--root", str(root), "--split", "trn", "--out", str(tmp_path / "run"),
                 "--backbone", str(tiny_backbone_dir), "--max-steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "spair_keypoint_names.csv" in err and "Traceback" not in err


def test_ap10k_padded_count_from_its_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ap10k-train-split1\.json"):
        ap10k_padded_keypoints(tmp_path)
    path = tmp_path / "annotations" / "ap10k-train-split1.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"categories": [{"id": 1, "name": "dog", "keypoints": [f"k{i}" for i in range(17)]}]}))
    assert ap10k_padded_keypoints(tmp_path) == 17
    path.write_text(json.dumps({"categories": [{"id": 1, "name": "dog"}]}))
    with pytest.raises(ValueError, match=r"ap10k-train-split1\.json: every category needs"):
        ap10k_padded_keypoints(tmp_path)


def test_pf_pascal_trains_on_mat_keypoints_without_augmentation(tmp_path):
    pascal = load_dataset("pf-pascal", _pf_pascal_tree(tmp_path), split="train")
    source = geco_source(pascal)
    assert source.num_keypoints == 20 and not source.augment
    pair = source.dataset[0]
    assert pair.source.num_keypoints == 20 and pair.source.visible.tolist()[:4] == [True, False, True, False]
    np.testing.assert_allclose(pair.source.keypoints[[0, 2]], [[10.0, 20.0], [40.0, 30.0]])  # 1-based -> 0-based
    assert pair.target.visible[:3].all() and not source.dataset.symmetry
    strong = AugmentConfig(flip=1.0, jitter_p=1.0, blur_p=1.0, solarize_p=1.0)  # ignored for PF-Pascal
    sample = GecoPairs([source], 112, 14, strong, per_category=None).sample(0, torch.Generator().manual_seed(0))
    plain = np.asarray(Image.open(pair.source.path).convert("RGB").resize((112, 112), Image.Resampling.BILINEAR))
    assert np.array_equal((sample["source_image"].permute(1, 2, 0) * 255).round().byte().numpy(), plain)
    assert sample["twin"].tolist() == list(range(20))  # no M−
    assert sample["source_visible"].tolist()[:3] == [True, False, True] and sample["target_visible"][:3].all()


def test_pf_pascal_missing_mat_is_named(tmp_path):
    root = _pf_pascal_tree(tmp_path)
    (root / "PF-dataset-PASCAL" / "Annotations" / "cat" / "b.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"PF-Pascal keypoint annotation of b\.jpg: no such file"):
        geco_source(load_dataset("pf-pascal", root, split="train"))


# --- SAM masks (official src/models/segmentation/sam.py: box + keypoints, one mask) ------------------------

class _Recorder:
    def __init__(self):
        self.prompts = []

    def __call__(self, image, box, points):
        self.prompts.append((None if box is None else np.asarray(box).tolist(), np.asarray(points).tolist()))
        return np.ones((image.height, image.width), bool)


def test_sam_is_prompted_with_the_box_and_the_visible_keypoints(shared_data, tmp_path):
    from geocorr.training.sam_masks import sam_masks

    root = _spair_tree(tmp_path / "SPair-71k", shared_data)
    spair = load_dataset("spair", root, split="trn")
    recorder = _Recorder()
    assert sam_masks(spair, root, tmp_path / "masks", recorder, progress=False) == 2
    assert recorder.prompts[0] == ([2, 3, 60, 44], [[8, 30], [50, 30], [30, 10]])
    assert recorder.prompts[1] == ([2, 3, 60, 44], [[52, 34], [10, 34], [30, 8]])
    pascal_root = _pf_pascal_tree(tmp_path / "pascal")
    pascal = load_dataset("pf-pascal", pascal_root, split="train")
    recorder = _Recorder()
    sam_masks(pascal, pascal_root, tmp_path / "pascal-masks", recorder, progress=False)
    assert [box for box, _ in recorder.prompts] == [None, None]  # PF-Pascal has no annotated box


def _tiny_sam_config():
    from transformers import SamConfig
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    vision = SamVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, output_channels=32,
                             global_attn_indexes=[0], mlp_dim=64, num_pos_feats=16)
    decoder = SamMaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2, iou_head_hidden_dim=32)
    prompt = SamPromptEncoderConfig(hidden_size=32)
    return SamConfig(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(),
                     mask_decoder_config=decoder.to_dict())


def test_sam_masks_are_written_once_in_the_mask_layout(shared_data, tmp_path):
    from geocorr.training.sam_masks import sam_masks

    root = _spair_tree(tmp_path / "SPair-71k", shared_data)
    spair = load_dataset("spair", root, split="trn")
    torch.manual_seed(0)
    assert sam_masks(spair, root, tmp_path / "masks", _tiny_sam_config(), progress=False) == 2  # box + points
    for ann in (spair[0].source, spair[0].target):
        mask = np.asarray(Image.open(tmp_path / "masks" / Path(ann.path).relative_to(root).with_suffix(".png")))
        assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0, 255}
    assert sam_masks(spair, root, tmp_path / "masks", _tiny_sam_config(), progress=False) == 0
    assert attach_masks(spair, root, tmp_path / "masks")[0].source.meta["mask"].is_file()


def test_cli_sam_needs_a_mask_dir(pf_willow_root, tmp_path, capsys):
    assert main(["train", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--out", str(tmp_path),
                 "--sam", "facebook/sam-vit-huge"]) == 2
    assert "--sam needs --mask-dir" in capsys.readouterr().err


# --- training ---------------------------------------------------------------------------------------------

def test_loss_falls_on_real_pairs(willow, tmp_path):
    conf = GecoTrainConfig(image_size=112, batch_size=2, max_steps=16, lr=3e-2, log_every=1, checkpoint_every=0,
                           augment=PLAIN)
    build_trainer(_few(willow), tmp_path, conf, backbone=tiny_config(), progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert np.mean(losses[-4:]) < 0.85 * np.mean(losses[:4])
    assert all(r["num_bin"] == 0 for r in records if "loss" in r)  # PF-Willow: every keypoint visible, M0 empty
    assert (tmp_path / "adapter.safetensors").is_file()


def test_pairs_with_an_empty_mask_are_skipped_and_logged(willow, pf_willow_root, tmp_path):
    few = _few(willow, (0, 90))  # two pairs of four different images
    for i, ann in enumerate((few[0].source, few[0].target, few[1].source, few[1].target)):
        w, h = ann.size
        target = tmp_path / "masks" / Path(ann.path).relative_to(pf_willow_root).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((h, w), 0 if i == 0 else 255, np.uint8)).save(target)  # pair 0: empty source
    masked = attach_masks(few, pf_willow_root, tmp_path / "masks")
    conf = GecoTrainConfig(image_size=112, batch_size=2, max_steps=2, log_every=1, checkpoint_every=0,
                           augment=PLAIN)
    build_trainer(masked, tmp_path / "run", conf, backbone=tiny_config(), progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["num_skipped"] for r in records if "loss" in r] == [1, 1]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)


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
    names = {p.name for p in tmp_path.iterdir()}
    assert {"adapter.safetensors", "log.jsonl"} <= names and any(n.startswith("checkpoint-") for n in names)
    assert main(args + ["--resume", "--lr", "0.5"]) == 2
    assert "another config" in capsys.readouterr().err
    assert main(args + ["--dataset", "pf-willow"]) == 2
    assert "one --root" in capsys.readouterr().err


def test_bad_datasets(willow):
    src = willow[0].source
    broken = replace(willow[0], target=replace(willow[0].target, keypoints=src.keypoints[:3],
                                               visible=src.visible[:3]))
    with pytest.raises(ValueError, match="10 vs 3 keypoints"):
        _pairs(replace(willow, pairs=[broken]))
    hidden = replace(src, keypoints=src.keypoints * np.nan, visible=np.zeros(10, bool))
    with pytest.raises(ValueError, match="no pair with a visible keypoint"):
        _pairs(replace(willow, pairs=[replace(willow[0], source=hidden, target=hidden)]))
    with pytest.raises(ValueError, match="multiple of the patch"):
        GecoPairs([GecoSource(willow, 10)], 100, 14, PLAIN)
    with pytest.raises(ValueError, match="num_keypoints 5 is below the 10 keypoints"):
        GecoSource(willow, 5)
