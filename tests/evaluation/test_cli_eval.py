import json
import shutil

import pytest

from geocorr.cli import main


@pytest.fixture(scope="module")
def willow_subset(tmp_path_factory, pf_willow_root):
    root = tmp_path_factory.mktemp("willow-cli")
    (root / "duck(S)").mkdir()
    for png in sorted((pf_willow_root / "duck(S)").glob("*.png"))[:3]:
        shutil.copy(png, root / "duck(S)" / png.name)
        shutil.copy(png.with_suffix(".mat"), root / "duck(S)" / png.with_suffix(".mat").name)
    return root


def _eval_args(root, backbone, *extra):
    return ["eval", "--method", "dinov2", "--backbone", str(backbone), "--image-size", "28",
            "--dataset", "pf-willow", "--root", str(root), "--no-progress", *extra]


def test_eval_then_metrics_from_saved_predictions(tmp_path, capsys, willow_subset, tiny_backbone_dir):
    preds = tmp_path / "preds.json"
    assert main(_eval_args(willow_subset, tiny_backbone_dir, "--max-pairs", "4", "--out", str(tmp_path / "r.json"),
                           "--save-predictions", str(preds))) == 0
    out = capsys.readouterr().out
    assert "4 pairs, 3 images forwarded" in out and "duck(S)" in out and "KAP" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["config"]["dataset"] == "pf-willow" and result["metrics"]["pck"]["num_points"] == 40
    assert (tmp_path / "r.csv").read_text().startswith("metric,category,alpha,value,config")
    assert (tmp_path / "r_pck.png").stat().st_size > 0
    # the same numbers from the file alone, and another protocol on identical predictions
    assert main(["metrics", str(preds), "--out", str(tmp_path / "m.json")]) == 0
    again = json.loads((tmp_path / "m.json").read_text())
    assert again["metrics"]["pck"] == result["metrics"]["pck"]
    assert main(["metrics", str(preds), "--protocol", "geoaware", "--out", str(tmp_path / "g.json")]) == 0
    geo = json.loads((tmp_path / "g.json").read_text())["metrics"]
    assert geo["protocol"]["normalisation"] == "bbox" and geo["pck_variants"] == result["metrics"]["pck_variants"]
    # same config: reused without a model; another config: refused
    assert main(_eval_args(willow_subset, tiny_backbone_dir, "--max-pairs", "4", "--save-predictions", str(preds))) == 0
    assert "reusing predictions" in capsys.readouterr().out
    assert main(_eval_args(willow_subset, tiny_backbone_dir, "--max-pairs", "2", "--save-predictions", str(preds))) == 2
    assert "differs in: max_pairs" in capsys.readouterr().err


def test_eval_bad_input_exits_2(tmp_path, capsys, tiny_backbone_dir):
    assert main(_eval_args(tmp_path / "nowhere", tiny_backbone_dir)) == 2
    assert "PF-Willow root: no such directory" in capsys.readouterr().err
    assert main(_eval_args(tmp_path, tiny_backbone_dir, "--max-pairs", "0")) == 2
    assert "--max-pairs must be >= 1" in capsys.readouterr().err
    assert main(_eval_args(tmp_path, tiny_backbone_dir, "--max-pairs-per-category", "-1")) == 2
    assert "--max-pairs-per-category must be >= 1" in capsys.readouterr().err
    assert main(_eval_args(tmp_path, tiny_backbone_dir, "--dataset-option", "layout=small")) == 2
    assert "unknown option(s) ['layout']" in capsys.readouterr().err
    assert main(["metrics", str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_first_per_category_keeps_order():
    from types import SimpleNamespace

    from geocorr.commands.eval import first_per_category

    pairs = [SimpleNamespace(category=c, i=i) for i, c in enumerate("aabab")]
    assert [p.i for p in first_per_category(pairs, 1)] == [0, 2]
    assert [p.i for p in first_per_category(pairs, 2)] == [0, 1, 2, 4]


def test_protocols_are_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "target image's height and width" in capsys.readouterr().out
