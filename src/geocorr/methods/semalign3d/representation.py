"""A 3D object-class representation: build it from annotated views, save it, load it back.

Stored as one ``.safetensors`` file: the tensors, plus JSON metadata (category, keypoint names,
the feature model that produced the semantics, build settings) in the file's metadata.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ...datasets.files import require_file
from .dense import DenseConfig, TrainingView, build_dense_cloud, keypoint_semantics
from .focal import FocalConfig, estimate_focals
from .geometry import backproject, edge_pair_table, pixels_to_normalised
from .priors import ShapePrior
from .sparse import SparseConfig, build_sparse_cloud

FORMAT = "geocorr.semalign3d/2"  # 2: tetrahedron features in the prior, full-side image units


@dataclass
class ClassRepresentation:
    """Sparse keypoint cloud, dense cloud parametrised by it, semantics and the shape prior.

    sparse: (L, 3) canonical keypoints; sparse_features: (L, C); sparse_mu, sparse_sigma: (L,) cosine
    similarity statistics (presence certainty). dense: (M, 3); dense_features: (M, C); dense_mu,
    dense_sigma: (M,); dense_index, dense_weights: (M, k) barycentric coordinates w.r.t. ``sparse``.
    prior: Beta distributions of the edge-pair features. front: (4,) keypoints (i, j, k) and sign s:
    s·(k_j − k_i)×(k_k − k_i) is the side the training cameras saw (the normal check of flat classes).
    """

    category: str
    keypoint_names: list[str]
    sparse: torch.Tensor
    sparse_features: torch.Tensor
    sparse_mu: torch.Tensor
    sparse_sigma: torch.Tensor
    dense: torch.Tensor
    dense_features: torch.Tensor
    dense_mu: torch.Tensor
    dense_sigma: torch.Tensor
    dense_index: torch.Tensor
    dense_weights: torch.Tensor
    prior: ShapePrior
    front: torch.Tensor
    meta: dict = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        return int(self.sparse.shape[0])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f.name: getattr(self, f.name).contiguous() for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), torch.Tensor)}
        tensors.update({f"prior_{f.name}": getattr(self.prior, f.name) for f in dataclasses.fields(ShapePrior)})
        info = {"format": FORMAT, "category": self.category, "keypoint_names": self.keypoint_names, "meta": self.meta}
        save_file(tensors, str(path), metadata={"geocorr": json.dumps(info)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClassRepresentation:
        path = require_file(path, "class representation")
        try:
            with safe_open(str(path), framework="pt") as handle:
                info = json.loads((handle.metadata() or {}).get("geocorr", "{}"))
            tensors = load_file(str(path))
        except Exception as err:  # safetensors raises several types for corrupt files
            raise ValueError(f"{path}: not a safetensors class representation ({err})") from err
        if info.get("format") != FORMAT:
            raise ValueError(f"{path}: expected format {FORMAT!r}, got {info.get('format')!r}")
        prior = ShapePrior(**{f.name: tensors.pop(f"prior_{f.name}") for f in dataclasses.fields(ShapePrior)})
        return cls(category=info["category"], keypoint_names=info["keypoint_names"], prior=prior,
                   meta=info["meta"], **tensors)


@dataclass
class BuildConfig:
    focal: FocalConfig = field(default_factory=FocalConfig)
    sparse: SparseConfig = field(default_factory=SparseConfig)
    dense: DenseConfig = field(default_factory=DenseConfig)
    seed: int = 0


def front_triangle(sparse: torch.Tensor, clouds: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Keypoints (i, j, k) of the largest canonical triangle and the sign s making its normal
    s·(k_j − k_i)×(k_k − k_i) face the cameras in most training clouds (S, L, 3) -> (4,) long."""
    tri = torch.combinations(torch.arange(len(sparse)), 3)
    area = torch.linalg.cross(sparse[tri[:, 1]] - sparse[tri[:, 0]], sparse[tri[:, 2]] - sparse[tri[:, 0]]).norm(dim=1)
    i, j, k = tri[area.argmax()].tolist()
    seen = visible[:, [i, j, k]].all(1)
    normal = torch.linalg.cross(clouds[seen, j] - clouds[seen, i], clouds[seen, k] - clouds[seen, i])
    facing = -(normal * clouds[seen][:, [i, j, k]].mean(1)).sum(-1)  # camera at the origin
    return torch.tensor([i, j, k, 1 if (facing > 0).sum() >= (facing < 0).sum() else -1])


def mirrored_clouds(clouds: torch.Tensor, visible: torch.Tensor, flip: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The clouds of the horizontally flipped images: x → −x (principal point at the centre) and
    keypoint i takes the place of its mirror twin ``flip[i]`` (the authors add flipped images with
    the left/right permutation). clouds: (S, L, 3), visible: (S, L) -> the same shapes."""
    if sorted(flip) != list(range(clouds.shape[1])):
        raise ValueError(f"flip: expected a permutation of the {clouds.shape[1]} keypoint ids, got {flip}")
    mirror = clouds.new_tensor([-1.0, 1.0, 1.0])
    return clouds[:, flip] * mirror, visible[:, flip]


def build_representation(views: list[TrainingView], category: str, keypoint_names: list[str] | None = None,
                         conf: BuildConfig | None = None, meta: dict | None = None, flip: list[int] | None = None,
                         progress: bool | None = False) -> ClassRepresentation:
    """Focal lengths → sparse cloud → dense cloud → semantics, from annotated training views.

    ``view.focal`` is ignored (estimated here). flip: the left/right keypoint permutation; when
    given, the mirrored training clouds join the prior and the sparse cloud. progress: tqdm bars
    (None: only on a terminal).
    """
    conf = conf or BuildConfig()
    if len(views) < 2:
        raise ValueError(f"views: building a class representation needs >= 2 annotated views, got {len(views)}")
    num = views[0].keypoints.shape[0]
    if any(v.keypoints.shape != (num, 2) for v in views):
        raise ValueError(f"views: every view needs keypoints of shape ({num}, 2)")
    names = keypoint_names or [str(i) for i in range(num)]
    if len(names) != num:
        raise ValueError(f"keypoint_names: expected {num} names, got {len(names)}")
    gen = torch.Generator().manual_seed(conf.seed)
    dt = torch.float64
    points = torch.stack([pixels_to_normalised(v.keypoints.to(dt), (v.depth.shape[0], v.depth.shape[1]))
                          for v in views])
    depth = torch.stack([v.depth_at_keypoints().to(dt) for v in views])
    visible = torch.stack([v.visible.bool() for v in views]) & points.isfinite().all(-1)
    table = edge_pair_table(num)
    table = table[torch.randperm(len(table), generator=gen)[:conf.focal.max_pairs]]
    focal = estimate_focals(points, depth, visible, table, conf.focal)
    clouds = backproject(points.nan_to_num(0.0), depth.nan_to_num(1.0), focal)
    all_clouds, all_visible = clouds, visible
    if flip is not None:
        flipped, flipped_visible = mirrored_clouds(clouds, visible, flip)
        all_clouds, all_visible = torch.cat([clouds, flipped]), torch.cat([visible, flipped_visible])
    sparse, prior = build_sparse_cloud(all_clouds, all_visible, conf.sparse, gen, progress)
    views = [dataclasses.replace(v, focal=float(f)) for v, f in zip(views, focal, strict=False)]
    dense = build_dense_cloud(views, sparse, conf.dense, gen)
    feats, mu, sigma = keypoint_semantics(views)
    return ClassRepresentation(
        category=category, keypoint_names=list(names), sparse=sparse.float(), sparse_features=feats.float(),
        sparse_mu=mu.float(), sparse_sigma=sigma.float(), dense=dense["points"].float(),
        dense_features=dense["features"].float(), dense_mu=dense["mu"].float(), dense_sigma=dense["sigma"].float(),
        dense_index=dense["index"], dense_weights=dense["weights"].float(),
        prior=ShapePrior(**{f.name: getattr(prior, f.name).float() if getattr(prior, f.name).is_floating_point()
                            else getattr(prior, f.name) for f in dataclasses.fields(ShapePrior)}),
        front=front_triangle(sparse, clouds, visible),
        meta={"num_views": len(views), "focals": focal.tolist(), "flip": flip, **(meta or {})})
