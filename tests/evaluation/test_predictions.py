import gzip
import json

import numpy as np
import pytest

from geocorr.evaluation.predictions import Predictions


@pytest.mark.parametrize("name", ["preds.json", "preds.json.gz"])
def test_round_trip_keeps_nan_and_visibility(tmp_path, make_pair, name):
    pair = make_pair({4: (50, 10)}, {4: (51, 12), 13: (3, 4)}, {4: 0.5, 13: 0.25}, [4, 13])
    preds = Predictions("spair", "test", {"method": "dinov2"}, [pair], {"cat": {"twin": [0]}}, {"seconds": 1.5})
    back = Predictions.load(preds.save(tmp_path / name))
    assert (back.dataset, back.split, back.config, back.symmetry, back.stats) == \
        ("spair", "test", {"method": "dinov2"}, {"cat": {"twin": [0]}}, {"seconds": 1.5})
    got = back.pairs[0]
    np.testing.assert_array_equal(got.predicted, pair.predicted)  # NaN positions included
    np.testing.assert_array_equal(got.target_visible, pair.target_visible)
    assert got.target_visible.dtype == bool and got.scores[13] == 0.25


def test_bad_files(tmp_path, make_pair):
    with pytest.raises(FileNotFoundError, match="predictions file"):
        Predictions.load(tmp_path / "none.json")
    (tmp_path / "junk.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="not a geocorr predictions file"):
        Predictions.load(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "coco"}))
    with pytest.raises(ValueError, match="not a geocorr predictions file"):
        Predictions.load(tmp_path / "other.json")
    (tmp_path / "short.json").write_text(json.dumps({"format": "geocorr-predictions", "version": 1}))
    with pytest.raises(ValueError, match="lacks dataset, split, config, pairs"):
        Predictions.load(tmp_path / "short.json")
    pair = make_pair({4: (50, 10)}, {4: (51, 12)}, {4: 0.5}, [4])
    record = json.loads(Predictions("x", "test", {}, [pair]).save(tmp_path / "p.json").read_text())
    del record["pairs"][0]["scores"]
    (tmp_path / "broken.json.gz").write_bytes(gzip.compress(json.dumps(record).encode()))
    with pytest.raises(ValueError, match="missing 'scores'"):
        Predictions.load(tmp_path / "broken.json.gz")


def test_shape_check(make_pair):
    pair = make_pair({4: (50, 10)}, {4: (51, 12)}, {4: 0.5}, [4])
    with pytest.raises(ValueError, match=r"target_bbox must have shape \(4,\)"):
        type(pair)(**{**vars(pair), "target_bbox": np.zeros(3)})
