"""Evaluation outputs: the CSV names its run by id (config once, in the JSON); report imports no viz."""
import csv
import hashlib
import json

from geocorr.evaluation.report import write_csv, write_json

METRICS = {"alphas": [0.05, 0.1], "pck": {"per_category": {"car": [50.0, 75.0]}, "all": [50.0, 75.0]},
           "pck_variants": {}, "kap": {"all": [40.0, 60.0]}}
CONFIG = {"method": "dinov2", "dataset": "pf-willow"}


def test_csv_rows_carry_the_run_id_and_the_json_the_config(tmp_path):
    expected = hashlib.sha1(b'{"dataset": "pf-willow", "method": "dinov2"}').hexdigest()[:12]
    rows = list(csv.reader(write_csv(tmp_path / "r.csv", CONFIG, METRICS).open()))
    assert rows[0] == ["metric", "category", "alpha", "value", "run"]
    assert rows[1:] == [["pck", "car", "0.05", "50.0", expected], ["pck", "car", "0.1", "75.0", expected],
                        ["pck", "all", "0.05", "50.0", expected], ["pck", "all", "0.1", "75.0", expected],
                        ["kap", "all", "0.05", "40.0", expected], ["kap", "all", "0.1", "60.0", expected]]
    saved = json.loads(write_json(tmp_path / "r.json", CONFIG, METRICS).read_text())
    assert saved["run"] == expected and saved["config"] == CONFIG


def test_report_draws_nothing():
    import geocorr.evaluation.report as report

    assert "viz" not in report.__dict__ and not hasattr(report, "write_plot")
