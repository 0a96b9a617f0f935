import json
import shutil

import pytest

from geocorr.cli import main


@pytest.fixture(scope="module")
def willow_subset(tmp_path_factory, copy_willow):
    return copy_willow(tmp_path_factory.mktemp("willow-cli"), "duck(S)")


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
    assert (tmp_path / "r.csv").read_text().startswith("metric,category,alpha,value,run")
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
    out = capsys.readouterr().out
    # the preset x dataset table: coordinates, query, prediction, up-sampling, comparison per preset
    assert "geoaware  spair,ap10k,  as-annotated  token          centre    none" in out and "<f32 840" in out
    geco_ap10k = "geco      ap10k         as-annotated  token          corner    none      .05 .10 .15      image"
    assert geco_ap10k in out
    assert "--pairs FILE" in out and "--clip-keypoints" in out


def test_pair_list_is_written_and_read_back(tmp_path, capsys, willow_subset, tiny_backbone_dir):
    out = tmp_path / "r.json"
    assert main(_eval_args(willow_subset, tiny_backbone_dir, "--max-pairs", "3", "--out", str(out))) == 0
    listed = (tmp_path / "r_pairs.csv").read_text().splitlines()
    assert listed[0] == "index,category,source,target" and len(listed) == 4
    reversed_list = tmp_path / "rev.csv"
    reversed_list.write_text("\n".join([listed[0], *listed[:0:-1]]) + "\n")
    assert main(_eval_args(willow_subset, tiny_backbone_dir, "--pairs", str(reversed_list),
                           "--out", str(tmp_path / "again.json"))) == 0
    again = (tmp_path / "again_pairs.csv").read_text().splitlines()
    assert [line.split(",", 1)[1] for line in again[1:]] == [line.split(",", 1)[1] for line in listed[:0:-1]]
    first = json.loads((tmp_path / "r.json").read_text())["metrics"]["pck"]
    second = json.loads((tmp_path / "again.json").read_text())["metrics"]["pck"]
    assert first["all"] == second["all"] and second["num_pairs"] == 3


def test_annotation_outside_a_halved_image_is_refused_or_clipped(tmp_path, capsys, willow_subset, tiny_backbone_dir):
    from PIL import Image

    halved = tmp_path / "halved"
    shutil.copytree(willow_subset, halved)
    for png in (halved / "duck(S)").glob("*.png"):
        with Image.open(png) as im:
            im.resize((im.width // 2, im.height // 2)).save(png)
    assert main(_eval_args(halved, tiny_backbone_dir, "--max-pairs", "2")) == 2
    err = capsys.readouterr().err
    assert "lies outside the" in err and ".png: keypoint" in err and "--clip-keypoints" in err
    assert main(_eval_args(halved, tiny_backbone_dir, "--max-pairs", "2", "--clip-keypoints",
                           "--out", str(tmp_path / "c.json"))) == 0
    assert "--clip-keypoints: clipped" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["stats"]["clipped_keypoints"] > 0


def test_metrics_refuses_a_zero_target_size(tmp_path, capsys, willow_subset, tiny_backbone_dir):
    preds = tmp_path / "p.json"
    assert main(_eval_args(willow_subset, tiny_backbone_dir, "--max-pairs", "1", "--save-predictions", str(preds))) == 0
    record = json.loads(preds.read_text())
    record["pairs"][0]["target_size"] = [0, 0]
    preds.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["metrics", str(preds)]) == 2
    err = capsys.readouterr().err
    assert "p.json" in err and "target_size must be a positive (width, height), got [0.0, 0.0]" in err


def test_preset_pipeline_is_recorded_and_pose_align_is_geoaware_only(tmp_path, capsys, willow_subset,
                                                                     tiny_backbone_dir):
    assert main(_eval_args(willow_subset, tiny_backbone_dir, "--max-pairs", "1", "--protocol", "geoaware",
                           "--option", "upsample=features", "--out", str(tmp_path / "g.json"))) == 0
    config = json.loads((tmp_path / "g.json").read_text())["config"]
    # the preset's conventions, with the explicit --option winning
    assert config["pipeline"] == {"preset": "geoaware", "coordinates": "as-annotated", "dataset_options": {},
                                  "query": "token", "prediction": "centre", "upsample": "features"}
    assert config["root"]["given"] == str(willow_subset)
    assert main(_eval_args(willow_subset, tiny_backbone_dir, "--max-pairs", "1", "--pose-align")) == 2
    assert "--pose-align applies to --method geoaware, not dinov2" in capsys.readouterr().err
