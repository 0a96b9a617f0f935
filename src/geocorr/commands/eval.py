"""``geocorr eval --method M --dataset D --root DIR``: PCK and friends on a benchmark.

Prints a table and writes JSON (``--out``), CSV and a PCK-vs-α plot beside it. Predictions can be
saved (``--save-predictions FILE``) and are then reused by a later run with the *same* config; a
different config refuses the file unless ``--overwrite``. Under ``accelerate launch`` (or
``torchrun``) the pairs are sharded over the processes and gathered: the results are identical to
a single process.

``--method cyclecorr`` prints two baselines beside its figures (the identity map through the same
crops, a random network of the same architecture); on ``--dataset pascal-parts`` it runs its own
evaluations, ``--metrics matchability,segmentation`` (segmentation transfer from the part-labelled
CAD models of ``--meshes DIR``; :mod:`geocorr.evaluation.cyclecorr`).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..datasets import DATASETS
from ..evaluation.protocols import ARGMAX_METHODS, PRESETS, get_pipeline, get_protocol
from ..evaluation.report import format_table, write_csv, write_json
from ..methods import get as get_method
from .common import add_model_arguments, load_model, parse_option

if TYPE_CHECKING:  # the heavy modules (torch) are imported where used: --help stays fast
    from ..datasets.base import PairDataset
    from ..evaluation.predictions import Predictions

PART_DATASET = "pascal-parts"
CYCLECORR_METRICS = ("matchability", "segmentation")  # cyclecorr's own evaluations on PASCAL-Part


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """--protocol and its overrides (shared with ``geocorr metrics``)."""
    group = parser.add_argument_group("protocol")
    group.add_argument("--protocol", default="geco", choices=PRESETS,
                       help="evaluation preset, the whole pipeline of a paper's evaluation code: geco, geoaware, "
                            "or geocorr (our pixel-centre, bilinear conventions); default geco; table below")
    group.add_argument("--alpha", type=float, action="append", help="PCK level (repeatable; overrides the preset)")
    group.add_argument("--normalisation", choices=["image", "bbox"], help="threshold from the target image or bbox")
    group.add_argument("--averaging", choices=["point", "image"], help="pool points or average per image")
    group.add_argument("--category-average", choices=["pooled", "mean"], help="how categories are combined")


def protocol_from_args(args: argparse.Namespace, dataset: str):
    return get_protocol(args.protocol, dataset, alphas=args.alpha, normalisation=args.normalisation,
                        averaging=args.averaging, category_average=args.category_average)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=Path, help="results JSON; a .csv and a _pck.png are written beside it")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..evaluation import protocols

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = protocols.__doc__
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True, choices=sorted([*DATASETS, PART_DATASET]), help="benchmark")
    data.add_argument("--root", required=True, type=Path, help="the dataset's folder (official layout)")
    data.add_argument("--split", default="test", help="split (default test)")
    data.add_argument("--dataset-option", action="append", default=[], type=parse_option, metavar="KEY=VALUE",
                      help="loader option, e.g. setting=cross-species (ap10k), layout=small (spair), "
                           "num_pairs=1000 (cub) — repeatable")
    data.add_argument("--category", action="append", dest="categories", metavar="NAME",
                      help="evaluate only this category (repeatable)")
    data.add_argument("--max-pairs-per-category", type=int,
                      help="keep the first N pairs of each category (GECO caps at 10000)")
    data.add_argument("--max-pairs", type=int, help="evaluate only the first N pairs (quick checks)")
    data.add_argument("--pairs", type=Path, metavar="FILE",
                      help="evaluate exactly these pairs, in this order: official test_pairs csv/json, SPair "
                           "layout .txt, a PairAnnotation/<split> folder (SPair; AP-10K as GeoAware/GECO wrote "
                           "them), or the <out>_pairs.csv a run writes")
    data.add_argument("--clip-keypoints", action="store_true",
                      help="clip keypoints lying outside their image and report how many (default: refuse)")
    data.add_argument("--mask-dir", type=Path, metavar="DIR",
                      help="object masks <DIR>/<image path under --root>.png (white = object), given to methods "
                           "that use masks (GeoAware's pose alignment, SemAlign3D)")
    data.add_argument("--pose-align", action="store_true",
                      help="GeoAware: adaptive pose alignment (the paper's † rows): match from the mirrored source "
                           "where its IMD to the target is smaller; needs the dataset's left/right flip tables")
    add_model_arguments(parser)
    add_protocol_arguments(parser)
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--batch-size", type=int, default=8, help="images per feature batch (default 8)")
    run_group.add_argument("--cache-mb", type=int, default=2048, help="in-memory feature cache (default 2048 MB)")
    run_group.add_argument("--cache-dir", type=Path, help="also keep features on disk here (reused across runs)")
    run_group.add_argument("--save-predictions", type=Path,
                           help="write predictions here (reused if the config matches)")
    run_group.add_argument("--overwrite", action="store_true", help="replace a predictions file of another config")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")
    parts = parser.add_argument_group("part segmentation (--dataset pascal-parts; --method cyclecorr: its own "
                                      "evaluations instead, chosen by --metrics)")
    parts.add_argument("--part-stride", type=int, default=4, help="use every N-th labelled pixel (default 4)")
    parts.add_argument("--pca-components", type=int, default=32, help="PCA components (default 32, GECO)")
    parts.add_argument("--metrics", metavar="NAMES",
                       help="cyclecorr: comma-separated, among " + ", ".join(CYCLECORR_METRICS) + ": matchability AP "
                            "over consecutive test images; shape-to-image segmentation transfer from --meshes "
                            "(mean IoU beside the identity-flow and random-network baselines). Default: "
                            "matchability, plus segmentation when --meshes is given")
    parts.add_argument("--meshes", type=Path, metavar="DIR",
                       help="cyclecorr segmentation: folder of part-labelled CAD models, searched recursively as "
                            "for train --meshes; parts are glTF/GLB node names or OBJ 'o' (else 'g') names, "
                            "matched to the dataset's part names (case, punctuation and instance numbers ignored)")
    parts.add_argument("--part-map", type=Path, metavar="FILE",
                       help="cyclecorr segmentation: JSON object {mesh part name: dataset part name} for parts "
                            'named otherwise, e.g. {"tyre": "wheel", "windscreen": "window"}')
    add_output_arguments(parser)


def run_config(args: argparse.Namespace) -> dict:
    """Everything that changes the predictions (the preset's pipeline included; its scoring is
    recomputed). Local paths are recorded as given and resolved."""
    return {"method": args.method, "backbone": _given_and_resolved(args.backbone), "weights": args.weights,
            "image_size": args.image_size, "dtype": args.dtype, "dataset": args.dataset,
            "root": _given_and_resolved(args.root), "split": args.split, "max_pairs": args.max_pairs,
            "max_pairs_per_category": args.max_pairs_per_category, "categories": args.categories,
            "pairs": None if args.pairs is None else str(args.pairs.resolve()), "clip_keypoints": args.clip_keypoints,
            "mask_dir": None if args.mask_dir is None else str(args.mask_dir.resolve()), "pose_align": args.pose_align,
            "dataset_options": dict(args.dataset_option), "method_options": dict(args.option),
            "pipeline": pipeline_config(args)}


def _given_and_resolved(path: str | Path | None) -> dict | str | None:
    """A local path as {"given", "resolved"}; a hub id or None as it is."""
    if path is None or not Path(path).exists():
        return None if path is None else str(path)
    return {"given": str(path), "resolved": str(Path(path).resolve())}


def pipeline_config(args: argparse.Namespace) -> dict:
    """The parts of the ``--protocol`` preset's pipeline this run applies (they change predictions).

    Matcher conventions apply to feature-argmax methods only, and an explicit ``--option`` wins.
    """
    preset = get_pipeline(args.protocol, args.dataset)
    pipeline = preset.to_dict()
    out = {"preset": args.protocol, "coordinates": pipeline["coordinates"],
           "dataset_options": {**preset.dataset_options(args.dataset), **dict(args.dataset_option)}}
    if args.dataset == "spair":
        out["spair_boxes"] = pipeline["spair_boxes"]
    if args.method in ARGMAX_METHODS:
        given = dict(args.option)
        out.update({k: given.get(k, pipeline[k]) for k in ("query", "prediction", "upsample")})
    return out


def prepare_pairs(args: argparse.Namespace, dataset: PairDataset, pipeline: dict) -> tuple[PairDataset, int]:
    """The pairs to evaluate, in the preset's coordinates, checked against their images.

    Returns the dataset and the number of keypoints clipped (``--clip-keypoints``).
    """
    from ..datasets.base import check_keypoints_in_image, with_coordinates
    from ..datasets.pair_list import read_pair_list, select_pairs

    if args.pairs is not None:
        dataset.pairs = select_pairs(dataset, read_pair_list(args.pairs), args.root)
    if args.categories:
        unknown = sorted(set(args.categories) - set(dataset.categories))
        if unknown:
            raise ValueError(f"--category {', '.join(unknown)}: not in {args.dataset} "
                             f"(categories: {', '.join(dataset.categories)})")
        dataset.pairs = [p for p in dataset.pairs if p.category in args.categories]
    if args.max_pairs_per_category is not None:
        dataset.pairs = first_per_category(dataset.pairs, args.max_pairs_per_category)
    if args.max_pairs is not None:
        dataset.pairs = dataset.pairs[: args.max_pairs]
    if pipeline.get("spair_boxes") == "pair":
        from ..datasets.spair import with_pair_boxes

        dataset = with_pair_boxes(dataset)
    dataset = with_coordinates(dataset, pipeline["coordinates"])
    if args.mask_dir is not None:
        from ..training.recipes.geco.data import attach_masks

        dataset = attach_masks(dataset, args.root, args.mask_dir)
    return check_keypoints_in_image(dataset, clip=args.clip_keypoints)


def pose_alignment_options(args: argparse.Namespace, dataset: PairDataset) -> dict:
    """``--pose-align``: GeoAware's model options (its flag and the dataset's left/right flips)."""
    if not args.pose_align:
        return {}
    if args.method != "geoaware":
        raise ValueError(f"--pose-align applies to --method geoaware, not {args.method}")
    flips = {c: list(t["flip"]) for c, t in dataset.symmetry.items() if "flip" in t}
    missing = sorted(set(dataset.categories) - set(flips))
    if missing:
        raise ValueError(f"--pose-align: {args.dataset} has no left/right flip table for {', '.join(missing)}")
    return {"pose_align": True, "flips": flips}


def first_per_category(pairs: list, limit: int) -> list:
    """The first ``limit`` pairs of each category, in their original order."""
    seen: dict[str, int] = {}
    kept = []
    for pair in pairs:
        seen[pair.category] = seen.get(pair.category, 0) + 1
        if seen[pair.category] <= limit:
            kept.append(pair)
    return kept


def _reusable(path: Path | None, config: dict, overwrite: bool) -> Predictions | None:
    from ..evaluation.predictions import Predictions

    if path is None or not path.exists() or overwrite:
        return None
    old = Predictions.load(path)
    if old.config != config:
        changed = sorted(k for k in set(old.config) | set(config) if old.config.get(k) != config.get(k))
        raise ValueError(f"--save-predictions {path} was made with another config (differs in: "
                         f"{', '.join(changed)}); pass --overwrite to replace it")
    return old


def report(args: argparse.Namespace, predictions: Predictions, label: str,
           baselines: dict[str, Predictions] | None = None) -> dict:
    """Compute, print and write the metrics of ``predictions``; ``baselines`` (name -> predictions on
    the same pairs) are scored by the same protocol, printed beside them and written to the JSON."""
    from ..evaluation.metrics import compute_metrics

    protocol = protocol_from_args(args, predictions.dataset)
    made_with = predictions.config.get("pipeline", {}).get("preset")
    if made_with is not None and made_with != protocol.name:
        print(f"note: these predictions were made with the {made_with} pipeline (coordinates, matching); "
              f"only the scoring is {protocol.name}'s")
    metrics = compute_metrics(predictions, protocol)
    print(format_table(metrics))
    scored = {name: compute_metrics(base, protocol) for name, base in (baselines or {}).items()}
    if scored:
        print(f"baselines on the same pairs, crops and protocol ({protocol.name}), PCK over all:")
        for name, values in scored.items():
            print(" ".join([f"  {name}"[:16].ljust(16)] + [f"{v:6.1f}" for v in values["pck"]["all"]]))
    if args.out is not None:
        written = {**metrics, "baselines": scored} if scored else metrics
        write_json(args.out, predictions.config, written, predictions.stats)
        csv_path = write_csv(args.out.with_suffix(".csv"), predictions.config, metrics)
        from ..viz import save_pck_plot

        png_path = save_pck_plot(args.out.with_name(args.out.stem + "_pck.png"), metrics,
                                 predictions.config.get("method", label), predictions.dataset)
        print(f"wrote {args.out}, {csv_path}, {png_path}")
    return metrics


def format_part_table(scores: dict) -> str:
    """The part-segmentation scores as text."""
    lines = [f"part segmentation: {scores['num_train_images']} train / {scores['num_test_images']} test images",
             "             accuracy  mean prec  mean rec   mIoU"]
    for name, s in (("all parts", scores), ("oriented", scores.get("oriented"))):
        if s is not None:
            lines.append(f"{name:<12} {s['accuracy']:8.1f} {s['mean_precision']:10.1f} {s['mean_recall']:9.1f} "
                         f"{s['miou']:6.1f}")
    if "oriented" in scores:
        lines.append(f"left/right confusion on oriented parts: {scores['oriented']['lr_confusion']:.1f}%")
    parts = zip(scores["part_names"], scores["iou"], strict=True)
    lines.append("IoU per part: " + ", ".join(f"{n} {v:.1f}" for n, v in parts))
    return "\n".join(lines)


def part_metrics(args: argparse.Namespace) -> list[str]:
    """The cyclecorr evaluations asked for (``--metrics``, ``--meshes``, ``--part-map``), checked."""
    given = [getattr(args, name) is not None for name in ("metrics", "meshes", "part_map")]
    if not (args.method == "cyclecorr" and args.dataset == PART_DATASET):
        if any(given):
            raise ValueError("--metrics, --meshes and --part-map apply to --method cyclecorr --dataset pascal-parts")
        return []
    if args.metrics is None:
        return ["matchability", "segmentation"] if args.meshes is not None else ["matchability"]
    names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    unknown = [n for n in names if n not in CYCLECORR_METRICS]
    if unknown or not names:
        raise ValueError(f"--metrics {args.metrics!r}: unknown metric {', '.join(unknown) or '(none given)'} "
                         f"(choose among {', '.join(CYCLECORR_METRICS)})")
    if "segmentation" in names and args.meshes is None:
        raise ValueError("--metrics segmentation needs --meshes DIR (part-labelled CAD models)")
    if "segmentation" not in names and (args.meshes is not None or args.part_map is not None):
        raise ValueError("--meshes and --part-map are used by segmentation only: add it to --metrics")
    return list(dict.fromkeys(names))


def read_part_map(path: Path) -> dict[str, str]:
    """--part-map: a JSON object of strings {mesh part name: dataset part name}."""
    import json

    try:
        aliases = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"--part-map {path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--part-map {path}: not JSON ({error})") from None
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ValueError(f"--part-map {path}: expected a JSON object of part names, e.g. {{\"tyre\": \"wheel\"}}")
    return aliases


def labelled_meshes(args: argparse.Namespace, part_names: list[str], category: str) -> list:
    """The CAD models of ``--meshes`` labelled in the dataset's part vocabulary (those labelling none
    are dropped, with a note); error naming the folder when none is left."""
    from ..evaluation.cyclecorr import load_labelled_meshes, unknown_aliases

    aliases = read_part_map(args.part_map) if args.part_map is not None else {}
    unknown = unknown_aliases(part_names, aliases)
    if unknown:
        raise ValueError(f"--part-map {args.part_map}: {', '.join(unknown)} is not a part of {category} "
                         f"({', '.join(part_names)})")
    try:
        kept, total, unmatched = load_labelled_meshes(args.meshes, part_names, aliases)
    except ValueError as error:
        raise ValueError(f"--meshes {args.meshes}: {error}") from None
    if not kept:
        raise ValueError(f"--meshes {args.meshes}: none of its {total} meshes labels a part of {category} "
                         f"({', '.join(part_names)}); name the parts in the files (glTF/GLB nodes, OBJ o/g) or map "
                         "them with --part-map")
    note = f"; mesh parts not among its parts (left unlabelled): {', '.join(unmatched)}" if unmatched else ""
    print(f"segmentation: {len(kept)} of {total} meshes label parts of {category}{note}")
    return kept


def format_segmentation(scores: dict, category: str) -> str:
    """The segmentation-transfer scores as text, each figure beside its baselines."""
    def show(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:5.1f}"

    lines = [f"shape-to-image segmentation transfer, {scores['num_images']} test images of {category}, "
             f"mean IoU over {', '.join(scores['parts'])}:",
             f"  cyclecorr {show(scores['miou'])} | identity flow (rendered labels pasted) "
             f"{show(scores['identity_miou'])} | random network {show(scores['random_miou'])}"]
    for part in scores["parts"]:
        lines.append(f"  {part:<12} IoU {show(scores['iou'][part])} | identity {show(scores['identity_iou'][part])}"
                     f" | random {show(scores['random_iou'][part])}")
    return "\n".join(lines)


def run_cyclecorr_parts(args: argparse.Namespace, config: dict, dataset, metrics: list[str]) -> int:
    """cyclecorr's own PASCAL-Part evaluations: matchability AP and segmentation transfer."""
    from ..evaluation.cyclecorr import (
        matchability_average_precision,
        matchability_chance,
        random_network,
        segmentation_transfer_scores,
    )

    meshes = labelled_meshes(args, dataset.part_names, dataset.category) if "segmentation" in metrics else []
    model = load_model(args)
    results: dict = {}
    if "matchability" in metrics:
        pairs = list(zip(dataset.test[:-1], dataset.test[1:], strict=True))
        ap = 100 * matchability_average_precision(model, pairs)
        chance = 100 * matchability_chance(model, pairs)
        random = 100 * matchability_average_precision(random_network(model), pairs)
        print(f"matchability AP over {len(pairs)} consecutive test pairs of {dataset.category}: {ap:.1f} "
              f"(chance, a constant score: {chance:.1f}; random network: {random:.1f})")
        results.update({"matchability_ap": ap, "chance_ap": chance, "random_ap": random, "num_pairs": len(pairs)})
    if "segmentation" in metrics:
        scores = segmentation_transfer_scores(model, dataset.test, meshes, dataset.part_names)
        print(format_segmentation(scores, dataset.category))
        results["segmentation"] = scores
    if args.out is not None:
        write_json(args.out, {**config, "metrics": metrics, "meshes": _given_and_resolved(args.meshes),
                              "part_map": _given_and_resolved(args.part_map)}, results)
        print(f"wrote {args.out}")
    return 0


def run_part_segmentation(args: argparse.Namespace, config: dict) -> int:
    from ..datasets.pascal_parts import load_pascal_parts
    from ..evaluation.part_segmentation import evaluate_part_segmentation

    metrics = part_metrics(args)
    dataset = load_pascal_parts(args.root, **dict(args.dataset_option))
    if args.method == "cyclecorr":  # no dense features: its own PascalParts evaluations
        return run_cyclecorr_parts(args, config, dataset, metrics)
    model = load_model(args)
    scores = evaluate_part_segmentation(model, dataset, num_components=args.pca_components, stride=args.part_stride)
    print(format_part_table(scores))
    if args.out is not None:
        write_json(args.out, {**config, "part_stride": args.part_stride, "pca_components": args.pca_components},
                   {"part_segmentation": scores})
        print(f"wrote {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from ..datasets.pair_list import write_pair_list
    from ..evaluation.cache import FeatureCache, model_fingerprint
    from ..evaluation.runner import evaluate_sharded

    for option in ("max_pairs", "max_pairs_per_category"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    config = run_config(args)
    if args.dataset == PART_DATASET:
        return run_part_segmentation(args, config)
    part_metrics(args)  # refuses the cyclecorr PASCAL-Part options elsewhere
    state = PartialState(cpu=args.device == "cpu")
    predictions = _reusable(args.save_predictions, config, args.overwrite)
    dataset: PairDataset | None = None
    model = None
    if predictions is not None:
        print(f"reusing predictions of the same config from {args.save_predictions}")
    else:
        pipeline = config["pipeline"]
        dataset, clipped = load_pairs(args, pipeline)
        if clipped:
            print(f"--clip-keypoints: clipped {clipped} keypoint annotation(s) lying outside their image")
        if args.out is not None and state.is_main_process:
            listed = write_pair_list(args.out.with_name(args.out.stem + "_pairs.csv"), dataset.pairs, args.root)
            print(f"wrote the {len(dataset.pairs)} evaluated pairs to {listed} (--pairs reads it back)")
        device = str(state.device) if state.num_processes > 1 else args.device
        args.device = device
        matcher = {k: pipeline[k] for k in ("query", "prediction", "upsample") if k in pipeline}
        model = load_model(args, **matcher, **pose_alignment_options(args, dataset))
        context = set(get_method(args.method).needs) | ({"masks"} if args.mask_dir is not None else set())
        cache = FeatureCache(args.cache_mb << 20, args.cache_dir,
                             model_fingerprint(model, config) if args.cache_dir else "")
        predictions = evaluate_sharded(model, dataset, rank=state.process_index, world=state.num_processes,
                                       batch_size=args.batch_size, cache=cache, config=config, context=context,
                                       progress=not args.no_progress and state.is_main_process)
        if not state.is_main_process:
            return 0
        predictions.stats["clipped_keypoints"] = clipped
        stats = predictions.stats
        print(f"{stats['pairs']} pairs, {stats['images_forwarded']} images forwarded in "
              f"{stats['seconds']:.1f} s ({stats['pairs'] / max(stats['seconds'], 1e-9):.1f} pairs/s)")
        if args.save_predictions is not None:
            predictions.save(args.save_predictions)
            print(f"wrote predictions to {args.save_predictions}")
    if state.is_main_process:
        extra = cyclecorr_baselines(args, predictions, dataset, model) if args.method == "cyclecorr" else None
        report(args, predictions, args.method, extra)
    return 0


def cyclecorr_baselines(args: argparse.Namespace, predictions: Predictions, dataset: PairDataset | None,
                        model=None) -> dict[str, Predictions]:
    """cyclecorr's keypoint baselines on the pairs of ``predictions``: the identity map (zero flow,
    through the same box crops) and a randomly initialised network of the same architecture (seed 0),
    run like the model; ``dataset``, ``model``: those pairs and the evaluated model (both loaded
    again only when the predictions were reused)."""
    from ..evaluation.cyclecorr import identity_predictions, random_network
    from ..evaluation.runner import evaluate

    if model is None:
        model = load_model(args)
    if dataset is None:
        dataset, _ = load_pairs(args, run_config(args)["pipeline"])
    print("random-network baseline: running a randomly initialised network (seed 0) on the same pairs")
    random = evaluate(random_network(model), dataset, batch_size=args.batch_size, config=predictions.config,
                      context=set(get_method(args.method).needs), progress=not args.no_progress)
    return {"identity": identity_predictions(predictions, model.image_size), "random network": random}


def load_pairs(args: argparse.Namespace, pipeline: dict) -> tuple[PairDataset, int]:
    """The dataset's pairs to evaluate (:func:`prepare_pairs`) and the keypoints clipped."""
    from ..datasets import load_dataset

    dataset = load_dataset(args.dataset, args.root, split=args.split, **pipeline["dataset_options"])
    return prepare_pairs(args, dataset, pipeline)
