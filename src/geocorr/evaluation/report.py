"""Outputs of an evaluation: a printed table, JSON and CSV with the run's config, a PCK-vs-α plot."""
from __future__ import annotations

import csv
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


def write_json(path: str | Path, config: dict, metrics: dict, stats: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": config, "metrics": metrics, "stats": stats or {}}, indent=2))
    return path


def write_csv(path: str | Path, config: dict, metrics: dict) -> Path:
    """One row per (metric, category, α): columns metric, category, alpha, value, then the config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
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
    settings = json.dumps(config, sort_keys=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "category", "alpha", "value", "config"])
        writer.writerows([*row, settings] for row in rows)
    return path


def write_plot(path: str | Path, metrics: dict, label: str) -> Path:
    """PCK (%) against α for the run (overall, plus the geometry-aware subset where known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..viz import plot_pck_curves

    curves = {label: metrics["pck"]["all"]}
    if "geometry_aware" in metrics and not any(math.isnan(v) for v in metrics["geometry_aware"]["geo"]):
        curves[f"{label} (geo-aware)"] = metrics["geometry_aware"]["geo"]
    fig = plot_pck_curves(metrics["alphas"], curves, title=metrics["protocol"]["name"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
