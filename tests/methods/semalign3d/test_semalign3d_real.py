"""SemAlign3D on real features (the real pretrained ViT-S/14 of the shared data, PF-Willow cars, flat
depth): the published 1000-step schedule must keep the class on the object.

With Eq. 11 as published, the alignment blew the cloud up past the image frame (median keypoint
error 255.6 px, 75 % of the keypoints off the image on 4 held-out cars,
benchmarks/semalign3d_real_diagnosis.py); ``background_beyond_frame`` fixes it.
"""
import torch

import geocorr
from geocorr.datasets.pf_willow import load_willow_image
from geocorr.images import load_image
from geocorr.methods.semalign3d.alignment import AlignConfig, align_many, prepare_target
from geocorr.methods.semalign3d.dense import DenseConfig, TrainingView
from geocorr.methods.semalign3d.focal import FocalConfig
from geocorr.methods.semalign3d.geometry import normalised_to_pixels, project
from geocorr.methods.semalign3d.representation import BuildConfig, build_representation
from geocorr.methods.semalign3d.sparse import SparseConfig

TRAIN = [("car(M)", "Cars_000a"), ("car(S)", "Cars_001b"), ("car(M)", "Cars_004b"), ("car(M)", "Cars_006a"),
         ("car(M)", "Cars_008a"), ("car(M)", "Cars_013b"), ("car(S)", "Cars_014a"), ("car(M)", "Cars_014b"),
         ("car(M)", "Cars_015a"), ("car(M)", "Cars_017a")]
HELD_OUT = [("car(G)", "Cars_007a"), ("car(G)", "Cars_019a")]


def box_mask(ann, hw):
    x0, y0, x1, y1 = ann.bbox
    ys, xs = torch.arange(hw[0])[:, None], torch.arange(hw[1])[None]
    return (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)


def test_published_schedule_keeps_the_class_on_real_cars(pf_willow_root, pretrained_vits14):
    torch.manual_seed(0)
    model = geocorr.load("dinov2", backbone=str(pretrained_vits14), image_size=224)

    def view(folder, stem):
        ann = load_willow_image(pf_willow_root / folder / f"{stem}.png", folder)
        feats = model.features(load_image(ann.path))
        grid = feats.grids[0]
        h, w = grid.grid_hw
        return ann, feats.dense[0, :, :h, :w].float(), grid

    views = []
    for folder, stem in TRAIN:
        ann, feats, grid = view(folder, stem)
        views.append(TrainingView(feats, grid, torch.ones(grid.image_hw), box_mask(ann, grid.image_hw),
                                  torch.as_tensor(ann.keypoints, dtype=torch.float32), torch.as_tensor(ann.visible)))
    conf = BuildConfig(focal=FocalConfig(steps=200), sparse=SparseConfig(steps=300, lr=1e-2),
                       dense=DenseConfig(points_per_image=1000, clusters=200, feature_neighbours=64))
    rep = build_representation(views, "car", conf=conf)
    # the published 1000 steps and schedules, 8 starts instead of 16 (time); with
    # background_beyond_frame=False this fails: 70 % of Cars_007a's keypoints off the image, 130 px
    align = AlignConfig(steps=1000, samples_per_focal=2, pixels=128, background_pixels=128)
    held_out = [view(*name) for name in HELD_OUT]
    targets = [prepare_target(rep, feats, grid, box_mask(ann, grid.image_hw), None, align,
                              torch.Generator().manual_seed(n)) for n, (ann, feats, grid) in enumerate(held_out)]
    results = align_many(rep, targets, align, [torch.Generator().manual_seed(10 + n) for n in range(len(targets))])
    for (ann, _, grid), result in zip(held_out, results, strict=True):
        h, w = grid.image_hw
        pix = normalised_to_pixels(project(result.sparse[None], torch.tensor([result.focal]))[0], (h, w))
        outside = ((pix[:, 0] < 0) | (pix[:, 0] >= w) | (pix[:, 1] < 0) | (pix[:, 1] >= h)).float().mean()
        error = (pix - torch.as_tensor(ann.keypoints, dtype=pix.dtype)).norm(dim=-1).median()
        assert outside <= 0.1, f"{ann.path.name}: {outside:.0%} of the keypoints projected off the image"
        assert error < 0.25 * max(h, w), f"{ann.path.name}: median keypoint error {error:.1f} px"
