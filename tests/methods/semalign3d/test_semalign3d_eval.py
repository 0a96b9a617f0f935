"""A SemAlign3D evaluation in which alignments diverge: each failed image is named, its matches
count as wrong, and the run goes on to write its results (issue 20, "Bad input")."""
import json

import pytest

from geocorr.cli import main

CATEGORY = "car(G)"
SIZE = 56


def test_eval_goes_on_past_diverged_alignments(build_semalign3d_class, tiny_backbone_dir, pf_willow_root,
                                               tmp_path, capsys):
    weights = build_semalign3d_class(tiny_backbone_dir, tmp_path / "class", CATEGORY, SIZE)
    diverging = {"steps": 2, "samples_per_focal": 1, "pixels": 16, "background_pixels": 16, "lr": float("inf")}
    out = tmp_path / "results.json"
    with pytest.warns(UserWarning, match=r"semalign3d: the alignment of .*Cars_\w+\.png diverged") as caught:
        code = main(["eval", "--method", "semalign3d", "--backbone", str(tiny_backbone_dir), "--image-size",
                     str(SIZE), "--weights", str(weights), "--option", "features=dinov2", "--option", "depth=null",
                     "--option", f"align={json.dumps(diverging)}", "--dataset", "pf-willow", "--root",
                     str(pf_willow_root), "--category", CATEGORY, "--max-pairs", "2", "--protocol", "geocorr",
                     "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    named = {str(w.message).split("alignment of ")[1].split(" diverged")[0] for w in caught}
    assert len(named) >= 2  # every image of the two pairs (at least the two sources and targets met)
    results = json.loads(out.read_text())
    pck = results["metrics"]["pck"]["all"]
    assert all(value == 0 for value in pck)  # NaN matches are wrong matches, not dropped
