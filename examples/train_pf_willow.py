"""Train a GECO LoRA on part of PF-Willow and compare zero-shot vs trained PCK on held-out images.

The split is by image: 30 % of each sub-folder's images are held out (seed 0) and only pairs of
two held-out images are tested; training sees pairs of the other images only. PF-Willow ships no
keypoint symmetry table, so there are no M− negatives, no flips and no left/right bucket metrics:
the geometric metrics printed are the PCK variants (image/bbox threshold, per point/per image)
and kAP.

    python examples/train_pf_willow.py                      # ViT-S/14 from ../shared/data, 224 px, CPU
    python examples/train_pf_willow.py --steps 400 --lr 5e-4

The objective and augmentation are GECO's published ones (raw-plan loss, official augmentation
strengths; see :mod:`geocorr.training.recipes.geco`). With the defaults (60 steps, batch 2, lr 1e-3,
224 px, seed 0; 10 min on a busy 2-core CPU with OMP_NUM_THREADS=1) it printed, on the 60 held-out
pairs of 30 held-out images::

     zero-shot: PCK@0.05/0.10/0.15 28.8 / 51.3 / 64.5   (bbox threshold @0.10: 38.2, kAP@0.10 33.0)
       trained: PCK@0.05/0.10/0.15 40.3 / 71.0 / 86.2   (bbox threshold @0.10: 53.2, kAP@0.10 56.1)

Before the loss and augmentation were made the official ones the same run gave 43.7 / 72.8 / 86.3
(bbox 55.7, kAP 61.3); the corrected loss with the earlier mild augmentation 45.3 / 74.3 / 86.2 (bbox
57.8, kAP 59.5). With ``--seed 1`` (another split): zero-shot 32.0 / 54.3 / 67.5, corrected 46.0 /
75.8 / 87.2 (kAP 63.3), before 49.5 / 76.0 / 86.2 (kAP 65.7). At this small scale the published
recipe is a little behind at α = 0.05 and in kAP; a PCK on 600 points has a standard error of ~1.8.

The backbone defaults to the real pretrained ViT-S/14 in ``../shared/data/dinov2-small-imgfocus``
(probably not Meta's original weights, see its PROVENANCE.md).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from geocorr.datasets import load_dataset
from geocorr.evaluation.metrics import compute_metrics
from geocorr.evaluation.protocols import get_protocol
from geocorr.evaluation.runner import evaluate
from geocorr.methods.geco import load
from geocorr.training.recipes.geco import GecoTrainConfig, build_trainer
from geocorr.training.splits import split_by_images

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def metrics(matcher, test_set) -> dict:
    predictions = evaluate(matcher.eval(), test_set, progress=False)
    return compute_metrics(predictions, get_protocol("geco", "pf-willow"))


def show(name: str, m: dict) -> None:
    variants = "  ".join(f"{k} {v[1]:.1f}" for k, v in m["pck_variants"].items())
    pck = " / ".join(f"{v:.1f}" for v in m["pck"]["all"])
    print(f"{name:>10}: PCK@0.05/0.10/0.15 {pck}   @0.10 by variant: {variants}   kAP@0.10 {m['kap']['all'][1]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SHARED / "PF-dataset-WILLOW")
    parser.add_argument("--backbone", default=str(SHARED / "dinov2-small-imgfocus"))
    parser.add_argument("--out", type=Path, default=Path("runs/geco_pf_willow"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train_set, test_set = split_by_images(load_dataset("pf-willow", args.root), 0.3, seed=args.seed)
    train_images = {str(a.path) for p in train_set for a in (p.source, p.target)}
    test_images = {str(a.path) for p in test_set for a in (p.source, p.target)}
    assert not train_images & test_images
    print(f"train: {len(train_set)} pairs of {len(train_images)} images; "
          f"test: {len(test_set)} pairs of {len(test_images)} held-out images")

    zero_shot = load(backbone=args.backbone, adapter=None, image_size=args.image_size, merge=False)
    before = metrics(zero_shot, test_set)
    show("zero-shot", before)

    conf = replace(GecoTrainConfig(), image_size=args.image_size, batch_size=args.batch_size, lr=args.lr,
                   max_steps=args.steps, seed=args.seed, checkpoint_every=100, log_every=10)
    trainer = build_trainer(train_set, args.out, conf, backbone=args.backbone)
    tic = time.perf_counter()
    result = trainer.fit()
    minutes = (time.perf_counter() - tic) / 60
    print(f"trained {args.steps} steps (batch {args.batch_size}, lr {args.lr}, {args.image_size} px) in "
          f"{minutes:.1f} min; last loss {result['loss']:.3f}; adapter: {args.out / 'adapter.safetensors'}")
    after = metrics(trainer.model.matcher, test_set)
    show("trained", after)
    gain = [a - b for a, b in zip(after["pck"]["all"], before["pck"]["all"], strict=True)]
    print("PCK gain (points):", " / ".join(f"{g:+.1f}" for g in gain))


if __name__ == "__main__":
    main()
