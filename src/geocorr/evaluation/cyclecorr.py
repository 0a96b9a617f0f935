"""The cycle-consistency paper's evaluations (Zhou et al., CVPR 2016) on the shared evaluation code.

Keypoint transfer: both images cut to their object box and resized to S×S (S = 128); a transfer
is correct within ``α · S`` crop pixels of the annotation (PCK, pooled over the keypoints visible
in both images). The pairs run through the shared runner (:func:`~geocorr.evaluation.runner.evaluate`,
which hands the boxes to :meth:`CycleCorr.match`); only the threshold is this protocol's.
Matchability: a source pixel is truly matchable when its part label occurs in the target
(PASCAL-Part); the predicted matchability is scored by the shared average precision
(:mod:`.kap`). PASCAL-Part images are cut to their object's box (the object mask's) like the
keypoint-transfer crops.

Shape-to-image segmentation transfer (:func:`segmentation_transfer_scores`): for each test image
the part-labelled CAD model and viewpoint are retrieved like training's (the HOG-nearest render
over training's candidate viewpoints × models, :func:`~geocorr.methods.cyclecorr.quartets.
retrieve_renders`; PASCAL-Part has no viewpoint annotation), with one difference: the renders are
rendered framed to their object box (:func:`~geocorr.methods.cyclecorr.quartets.framed_camera`), the
framing of the box-cropped image and of training's quartets. Whole renders, where a car covers
~21 % of the frame, retrieve the view about as well as chance from box crops (40 synthetic toy-car
crops, S = 64 / 128: azimuth within 15° 8 % / 18 % whole, 68 % / 72 % framed; chance 8 %;
``benchmarks/cyclecorr_retrieval.py``). The framed render is what the
network sees (as any image at test time), and its part labels are carried to the image crop
through the predicted flow ``F_{image,render}``.
The confusion is pooled over all test images and scored by the shared mean IoU
(:mod:`.part_segmentation`) over the dataset parts the CAD models label, beside two baselines: the
rendered labels pasted without flow (identity flow) and a randomly initialised network of the same
architecture. The paper reports this task on PASCAL-Part images; the paper notes we hold
(``docs/papers/004``) stop at the section's heading, so its retrieval, part set and pooling are
not reproduced from it: the choices above are ours (training's retrieval, framed; pooled
confusion; the parts both sides name).

Every figure comes with its baselines: keypoint PCK with the identity map and a random network
(:func:`baselines`, :func:`identity_predictions`), matchability AP with its chance level
(:func:`matchability_chance`) and a random network.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from ..datasets.base import Pair, PairDataset, keypoint_bbox
from ..datasets.pascal_parts import PartImage
from ..images import load_image
from ..methods.cyclecorr.camera import Viewpoint
from ..methods.cyclecorr.crop import Crop
from ..methods.cyclecorr.mesh import Mesh, load_meshes
from ..methods.cyclecorr.model import CycleCorr
from ..methods.cyclecorr.network import NetworkConfig
from ..methods.cyclecorr.parts import label_parts, matchability_ground_truth, segmentation_transfer, unknown_aliases
from ..methods.cyclecorr.quartets import render_camera, retrieve_renders, viewpoint_grid
from ..methods.cyclecorr.render import render
from .kap import average_precision
from .part_segmentation import confusion_matrix, segmentation_scores
from .pck import correct_keypoints
from .predictions import Predictions
from .runner import evaluate

__all__ = ["baselines", "identity_predictions", "identity_transfer_pck", "keypoint_transfer_pck",
           "load_labelled_meshes", "matchability_average_precision", "matchability_chance", "mean_iou",
           "part_confusion", "random_network", "segmentation_transfer_scores", "unknown_aliases"]


def keypoint_transfer_pck(model: CycleCorr, pairs: Iterable[Pair], alphas: Sequence[float] = (0.05, 0.1)
                          ) -> dict[str, float]:
    """PCK at ``α · S`` on S×S box crops over the keypoints visible in both images of every pair.

    Returns {"pck@α": fraction for each α, "points": number of transferred keypoints}.
    """
    pairs = list(pairs)
    name = pairs[0].category if pairs else "pairs"
    predictions = evaluate(model, PairDataset(name, "eval", pairs), context=("boxes",), progress=False)
    correct = []
    for record in predictions.pairs:
        both = record.source_visible & record.target_visible
        if not both.any():
            continue
        width, height = (int(v) for v in record.target_size)
        crop = Crop.from_box(record.target_bbox, (height, width), model.image_size)
        moved = crop.to_crop(torch.as_tensor(record.predicted[both], dtype=torch.float32))
        truth = crop.to_crop(torch.as_tensor(record.target_keypoints[both], dtype=torch.float32))
        size = np.full(len(truth), float(model.image_size))
        correct.append(correct_keypoints(moved.numpy(), truth.numpy(), size, alphas))
    if not correct:
        raise ValueError("no pair has a keypoint visible in both images")
    hits = np.concatenate(correct)
    return {**{f"pck@{a:g}": float(r) for a, r in zip(alphas, hits.mean(0), strict=True)}, "points": len(hits)}


def _crop_of(ann, size: int) -> Crop:
    box = ann.bbox if ann.bbox is not None else keypoint_bbox(ann.keypoints, ann.visible)
    return Crop.from_box(box, (int(ann.size[1]), int(ann.size[0])), size)


def identity_transfer_pck(pairs: Iterable[Pair], image_size: int = 128, alphas: Sequence[float] = (0.05, 0.1)
                          ) -> dict[str, float]:
    """The identity map's PCK on the crop protocol: each keypoint stays at its crop position.

    The baseline every keypoint-transfer figure needs beside it (box crops align objects already).
    """
    correct = []
    for pair in pairs:
        both = np.asarray(pair.source.visible) & np.asarray(pair.target.visible)
        if not both.any():
            continue
        moved = _crop_of(pair.source, image_size).to_crop(torch.as_tensor(pair.source.keypoints[both]).float())
        truth = _crop_of(pair.target, image_size).to_crop(torch.as_tensor(pair.target.keypoints[both]).float())
        correct.append(correct_keypoints(moved.numpy(), truth.numpy(), np.full(len(truth), float(image_size)), alphas))
    if not correct:
        raise ValueError("no pair has a keypoint visible in both images")
    hits = np.concatenate(correct)
    return {**{f"pck@{a:g}": float(r) for a, r in zip(alphas, hits.mean(0), strict=True)}, "points": len(hits)}


def baselines(pairs: Sequence[Pair], image_size: int = 128, alphas: Sequence[float] = (0.05, 0.1), seed: int = 0
              ) -> dict[str, float]:
    """PCK of the identity map and of a randomly initialised network (``seed``) on the crop protocol:
    {"identity_pck@α": ..., "random_pck@α": ...}."""
    identity = identity_transfer_pck(pairs, image_size, alphas)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random_net = CycleCorr(network=NetworkConfig(image_size=image_size)).eval()
    random = keypoint_transfer_pck(random_net, pairs, alphas)
    return {**{f"identity_{k}": v for k, v in identity.items() if k != "points"},
            **{f"random_{k}": v for k, v in random.items() if k != "points"}}


def random_network(model: CycleCorr, seed: int = 0) -> CycleCorr:
    """A randomly initialised (``seed``) matcher of ``model``'s architecture, on its device: the
    random-network baseline."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CycleCorr(network=model.net.config).to(model.device).eval()


def identity_predictions(predictions: Predictions, image_size: int) -> Predictions:
    """What the identity map (a zero flow) predicts on the pairs of ``predictions``, through the same
    crops as :meth:`CycleCorr.match`: each source keypoint keeps its place in its S×S box crop and is
    mapped back from the target's. Scores are constant (1); keypoints not queried stay NaN."""
    pairs = []
    for record in predictions.pairs:
        (w0, h0), (w1, h1) = (tuple(int(v) for v in r) for r in (record.source_size, record.target_size))
        crop0 = Crop.from_box(record.source_bbox, (h0, w0), image_size)
        crop1 = Crop.from_box(record.target_bbox, (h1, w1), image_size)
        queried = np.isfinite(record.predicted).all(1)
        points = torch.as_tensor(np.clip(record.source_keypoints, -0.5, [w0 - 0.5, h0 - 0.5]), dtype=torch.float64)
        moved = crop1.from_crop(crop0.to_crop(points).clamp(-0.5, image_size - 0.5)).numpy()
        pairs.append(replace(record, predicted=np.where(queried[:, None], moved, np.nan),
                             scores=np.where(queried, 1.0, np.nan)))
    return replace(predictions, pairs=pairs)


def _object_crop(model: CycleCorr, part: PartImage) -> tuple[Tensor, Tensor]:
    """The image cut to its object box (the annotated part pixels' box when the object's is unknown)
    -> (3×S×S pixels, S×S part labels + 1, 0 = no part)."""
    labels = torch.as_tensor(np.asarray(part.labels), dtype=torch.long)
    box = part.bbox
    if box is None:
        rows, cols = torch.nonzero(labels >= 0, as_tuple=True)
        if len(rows) == 0:
            raise ValueError(f"{part.path}: no annotated part pixel")
        box = (int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max()))
    pixels, crop = model.crop(load_image(part.path, str(part.path)), box)
    return pixels, crop.apply_labels(labels) + 1


def matchability_average_precision(model: CycleCorr, pairs: Iterable[tuple[PartImage, PartImage]]) -> float:
    """AP of the predicted ``M_{a,b}`` against part co-occurrence, pooled over the pixels of every pair.

    Each image is cut to its object's box and resized to S×S; a pixel of a is
    truly matchable when its part occurs in b (:func:`matchability_ground_truth`).
    """
    scores, truths = [], []
    for part_a, part_b in pairs:
        (pixels_a, parts_a), (pixels_b, parts_b) = _object_crop(model, part_a), _object_crop(model, part_b)
        _, matchability = model.predict(pixels_a, pixels_b)
        scores.append(matchability[0].cpu().flatten())
        truths.append(matchability_ground_truth(parts_a, parts_b).flatten())
    if not scores:
        raise ValueError("matchability_average_precision needs at least one pair")
    truth = torch.cat(truths).numpy()
    if not truth.any():
        raise ValueError("matchability_average_precision: no pixel of any pair is matchable (no shared part)")
    return average_precision(torch.cat(scores).numpy(), truth, int(truth.sum()))


def matchability_chance(model: CycleCorr, pairs: Iterable[tuple[PartImage, PartImage]]) -> float:
    """The chance level of :func:`matchability_average_precision`: the AP of a constant score, i.e.
    the share of truly matchable pixels over the same crops."""
    truths = [matchability_ground_truth(_object_crop(model, a)[1], _object_crop(model, b)[1]).flatten()
              for a, b in pairs]
    if not truths:
        raise ValueError("matchability_chance needs at least one pair")
    truth = torch.cat(truths).numpy()
    return average_precision(np.zeros(len(truth)), truth) if truth.any() else 0.0


def part_confusion(predicted: Tensor, truth: Tensor, labels: Sequence[int]) -> np.ndarray:
    """Confusion (rows = truth) of two same-shape label maps over ``labels``: index n + 1 is
    ``labels[n]``, index 0 every other value (background, unscored parts) -> (L+1)×(L+1) counts."""
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted must have shape {tuple(truth.shape)}, got {tuple(predicted.shape)}")
    labels = list(dict.fromkeys(int(label) for label in labels))

    def remap(values: Tensor) -> np.ndarray:
        flat = values.cpu().numpy().ravel()
        out = np.zeros(len(flat), dtype=np.int64)
        for n, label in enumerate(labels):
            out[flat == label] = n + 1
        return out

    return confusion_matrix(remap(predicted), remap(truth), len(labels) + 1)


def mean_iou(predicted: Tensor, truth: Tensor, labels: Sequence[int]) -> float:
    """Mean intersection-over-union (fraction) of ``predicted`` vs ``truth`` (same-shape label maps)
    over ``labels``, with the shared segmentation scores (:mod:`geocorr.evaluation.part_segmentation`);
    a label absent from the truth is left out of the mean."""
    labels = list(labels)
    scores = segmentation_scores(part_confusion(predicted, truth, labels), list(range(1, len(labels) + 1)))
    if np.isnan(scores["miou"]):
        raise ValueError(f"none of the labels {labels} occurs in the truth")
    return scores["miou"] / 100


def load_labelled_meshes(folder, part_names: Sequence[str], aliases: dict[str, str] | None = None
                         ) -> tuple[list[Mesh], int, list[str]]:
    """The CAD models under ``folder`` (:func:`~geocorr.methods.cyclecorr.mesh.load_meshes`) relabelled
    in the dataset's ``part_names`` (:func:`~geocorr.methods.cyclecorr.parts.label_parts`, with
    ``aliases``) -> (the meshes that label at least one part, the number of meshes read, the mesh
    part names that match no dataset part, sorted)."""
    meshes, _ = load_meshes(folder)
    labelled = [label_parts(mesh, part_names, aliases) for mesh in meshes]
    unmatched = set()  # mesh parts whose faces all stayed unlabelled
    for mesh, new in zip(meshes, labelled, strict=True):
        for k, name in enumerate(mesh.part_names, 1):
            if not bool((new.face_labels[mesh.face_labels == k] > 0).any()):
                unmatched.add(name)
    kept = [mesh for mesh in labelled if bool((mesh.face_labels > 0).any())]
    return kept, len(meshes), sorted(unmatched)


def _number(value: float) -> float | None:
    """NaN (a part no test image shows) as None: JSON has no NaN."""
    return None if np.isnan(value) else value


def segmentation_transfer_scores(model: CycleCorr, images: Sequence[PartImage], meshes: Sequence[Mesh],
                                 part_names: Sequence[str], candidates: Sequence[Viewpoint] | None = None,
                                 seed: int = 0) -> dict:
    """Shape-to-image segmentation transfer (module docstring) on ``images``.

    meshes: CAD models labelled in the dataset's vocabulary (face label i + 1 = ``part_names[i]``,
    :func:`~geocorr.methods.cyclecorr.parts.label_parts`); candidates: the viewpoints searched
    (default :func:`~geocorr.methods.cyclecorr.quartets.viewpoint_grid`, training's); seed: the
    random network's. Returns percentages: {"miou", "iou" {part: IoU}} of the network and the same
    under "identity_…" and "random_…" (None: no test image shows that part), "parts" (the scored
    parts), "num_images", "retrieved" (per image: its mesh index and viewpoint).
    """
    images = list(images)
    if not images:
        raise ValueError("segmentation transfer needs at least one test image")
    labelled = sorted({int(v) for mesh in meshes for v in mesh.face_labels.unique().tolist() if v > 0})
    if not labelled:
        raise ValueError(f"no CAD model labels any of the parts {', '.join(part_names)}")
    crops = [_object_crop(model, image) for image in images]
    retrieved = retrieve_renders(torch.stack([pixels for pixels, _ in crops]), meshes,
                                 viewpoint_grid() if candidates is None else candidates, framed=True)
    random_net = random_network(model, seed)
    size = model.image_size
    k = len(labelled) + 1
    confusion = {name: np.zeros((k, k), dtype=np.int64) for name in ("network", "identity", "random")}
    for (pixels, truth), (view, index) in zip(crops, retrieved, strict=True):
        shape = render(meshes[index], render_camera(meshes[index], view, size, framed=True))
        predicted = {"identity": shape.labels.clamp(min=0)}  # the rendered labels, pasted: flow 0
        for name, net in (("network", model), ("random", random_net)):
            predicted[name] = segmentation_transfer(net, pixels, shape)
        for name, labels in predicted.items():
            confusion[name] += part_confusion(labels, truth, labelled)
    names = [part_names[label - 1] for label in labelled]
    out: dict = {"parts": names, "num_images": len(images)}
    for name, counts in confusion.items():
        scores = segmentation_scores(counts, list(range(1, k)))
        prefix = "" if name == "network" else f"{name}_"
        out[f"{prefix}miou"] = _number(scores["miou"])
        out[f"{prefix}iou"] = {part: _number(v) for part, v in zip(names, scores["iou"], strict=True)}
    out["retrieved"] = [{"image": image.path.name, "mesh": index, "azimuth": view.azimuth,
                         "elevation": view.elevation} for image, (view, index) in zip(images, retrieved, strict=True)]
    return out
