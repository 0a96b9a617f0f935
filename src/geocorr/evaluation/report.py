"""Outputs of an evaluation: a printed table, JSON with the run's config, and CSV.

Pictures are drawn by the faces (:func:`geocorr.viz.save_pck_plot`): evaluation never imports viz.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path


def _fmt(value: float) -> str:
    return "  -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:5.1f}"


def format_table(metrics: dict) -> str:
    """PCK per category and overall (percent), then the extra metrics, as aligned text."""
    alphas = metrics["alphas"]
    proto = metrics["protocol"]
    head = ["category".ljust(16)] + [f"@{a:g}".rjust(6) for a in alphas]
    lines = [f"protocol {proto['name']}: {proto['normalisation']} threshold, per {proto['averaging']}, "
             f"{proto['category_average']} over categories", " ".join(head)]
    for cat, values in metrics["pck"]["per_category"].items():
        lines.append(" ".join([cat[:16].ljust(16)] + [_fmt(v).rjust(6) for v in values]))
    lines.append(" ".join(["all".ljust(16)] + [_fmt(v).rjust(6) for v in metrics["pck"]["all"]]))
    lines.append(f"({metrics['pck']['num_points']} keypoints in {metrics['pck']['num_pairs']} pairs)")
    if "geometry_aware" in metrics:
        geo = metrics["geometry_aware"]
        lines.append(" ".join(["geo-aware PCK".ljust(16)] + [_fmt(v).rjust(6) for v in geo["geo"]])
                     + f"   ({geo['share_points']:.1f}% of points, {geo['share_images']:.1f}% of pairs)")
    if "symmetry" in metrics:
        sym = metrics["symmetry"]
        for bucket, values in sym["pck"].items():
            lines.append(" ".join([f"PCK {bucket}".ljust(16)] + [_fmt(v).rjust(6) for v in values]))
        lines.append(" ".join(["swap rate n11".ljust(16)] + [_fmt(v).rjust(6) for v in sym["swap_rate"]]))
        lines.append(" ".join(["ambiguous n11".ljust(16)] + [_fmt(v).rjust(6) for v in sym["ambiguous_rate"]]))
        lines.append("buckets: " + ", ".join(f"{b} {v:.1f}%" for b, v in sym["buckets"].items()))
    lines.append(" ".join(["KAP".ljust(16)] + [_fmt(v).rjust(6) for v in metrics["kap"]["all"]]))
    return "\n".join(lines)


def run_id(config: dict) -> str:
    """A short id of a run's config: the first 12 hex digits of the SHA-1 of its sorted JSON."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def write_json(path: str | Path, config: dict, metrics: dict, stats: dict | None = None) -> Path:
    """``{"run": run_id(config), "config", "metrics", "stats"}`` as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"run": run_id(config), "config": config, "metrics": metrics, "stats": stats or {}}
    path.write_text(json.dumps(payload, indent=2))
    return path


def write_csv(path: str | Path, config: dict, metrics: dict) -> Path:
    """One row per (metric, category, α): columns metric, category, alpha, value, run.

    ``run`` is :func:`run_id` of the config (the config itself is in the results JSON beside the CSV),
    so the rows of several runs can be concatenated and told apart.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, float, float]] = []
    alphas = metrics["alphas"]

    def add(metric: str, category: str, values) -> None:
        rows.extend((metric, category, a, v) for a, v in zip(alphas, values, strict=True))

    for cat, values in metrics["pck"]["per_category"].items():
        add("pck", cat, values)
    add("pck", "all", metrics["pck"]["all"])
    for variant, values in metrics["pck_variants"].items():
        add(f"pck[{variant}]", "all", values)
    if "geometry_aware" in metrics:
        add("geo_pck", "all", metrics["geometry_aware"]["geo"])
    if "symmetry" in metrics:
        for bucket, values in metrics["symmetry"]["pck"].items():
            add(f"pck_{bucket}", "all", values)
        add("swap_rate", "all", metrics["symmetry"]["swap_rate"])
        add("ambiguous_rate", "all", metrics["symmetry"]["ambiguous_rate"])
    add("kap", "all", metrics["kap"]["all"])
    run = run_id(config)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "category", "alpha", "value", "run"])
        writer.writerows([*row, run] for row in rows)
    return path
