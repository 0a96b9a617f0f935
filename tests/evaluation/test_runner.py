
import numpy as np
import pytest

import geocorr
from geocorr.backbones import tiny_config
from geocorr.datasets.pf_willow import load_pf_willow
from geocorr.evaluation.cache import FeatureCache, model_fingerprint
from geocorr.evaluation.runner import evaluate, shard
from geocorr.methods.base import DenseMatcher


@pytest.fixture(scope="module")
def small_willow(tmp_path_factory, copy_willow):
    """2 folders x 3 real PF-Willow images: 12 ordered pairs, 6 images."""
    return load_pf_willow(copy_willow(tmp_path_factory.mktemp("willow"), "car(G)", "duck(S)"))


@pytest.fixture(scope="module")
def tiny_model():
    import torch

    torch.manual_seed(0)
    return geocorr.load("dinov2", backbone=tiny_config(), image_size=56, upsample="none")


class CountingModel(DenseMatcher):
    """The same dense matcher (shared backbone and options), counting the images sent to features()."""

    def __init__(self, model):
        super().__init__(model.backbone, **model.conf)
        self.images = 0

    def features(self, images):
        self.images += len(images)
        return super().features(images)


def small_willow_feature_bytes(model, dataset) -> int:
    from geocorr.evaluation.cache import nbytes

    return nbytes(model.features([str(dataset[0].source.path)])[0])


def _arrays(preds):
    return np.stack([p.predicted for p in preds.pairs]), np.stack([p.scores for p in preds.pairs])


def test_each_image_is_forwarded_once(small_willow, tiny_model):
    model = CountingModel(tiny_model)
    preds = evaluate(model, small_willow, batch_size=4, progress=False)
    assert model.images == 6 and preds.stats["images_forwarded"] == 6
    assert len(preds.pairs) == 12
    predicted, scores = _arrays(preds)
    assert np.isfinite(predicted).all() and np.isfinite(scores).all()  # PF-Willow: all 10 visible
    first = preds.pairs[0]
    assert first.source == str(small_willow[0].source.path) and first.category == "car(G)"


def test_memory_bound_recomputes(small_willow, tiny_model):
    model = CountingModel(tiny_model)
    evaluate(model, small_willow, pair_indices=range(4), batch_size=1, cache=FeatureCache(max_bytes=0),
             progress=False)
    assert model.images == 8  # two images per pair, nothing kept
    model.images = 0
    one_image = FeatureCache(max_bytes=small_willow_feature_bytes(tiny_model, small_willow))
    evaluate(model, small_willow, pair_indices=[0, 1, 0], batch_size=1, cache=one_image, progress=False)
    # pairs (a, b), (a, c), (a, b): only the last image stays -> a, b | a, c | a, b
    assert model.images == 6 and len(one_image) == 1


def test_shards_give_identical_results(small_willow, tiny_model):
    whole = evaluate(tiny_model, small_willow, batch_size=4, progress=False)
    parts = [evaluate(tiny_model, small_willow, pair_indices=shard(len(small_willow), r, 3), batch_size=4,
                      progress=False) for r in range(3)]
    merged = [p for part in parts for p in part.pairs]
    assert [p.source + p.target for p in merged] == [p.source + p.target for p in whole.pairs]
    np.testing.assert_array_equal(np.stack([p.predicted for p in merged]), _arrays(whole)[0])
    np.testing.assert_array_equal(np.stack([p.scores for p in merged]), _arrays(whole)[1])


def test_shard_bounds():
    assert [list(shard(5, r, 2)) for r in range(2)] == [[0, 1], [2, 3, 4]]
    with pytest.raises(ValueError, match="rank"):
        shard(5, 2, 2)


def test_disk_cache_is_reused(tmp_path, small_willow, tiny_model):
    fingerprint = model_fingerprint(tiny_model, {"image_size": 56})
    first = evaluate(tiny_model, small_willow, cache=FeatureCache(directory=tmp_path, fingerprint=fingerprint),
                     progress=False)
    model = CountingModel(tiny_model)
    cache = FeatureCache(directory=tmp_path, fingerprint=fingerprint)
    second = evaluate(model, small_willow, cache=cache, progress=False)
    assert model.images == 0 and cache.disk_hits == 6
    np.testing.assert_array_equal(_arrays(first)[0], _arrays(second)[0])
    assert model_fingerprint(tiny_model, {"image_size": 28}) != fingerprint


def test_methods_without_reusable_features_use_match(small_willow, tiny_model):
    class MatchOnly:
        def match(self, img0, img1, points, context=None):
            return tiny_model.match(img0, img1, points, context)

    subset = list(range(4))
    reference = evaluate(tiny_model, small_willow, pair_indices=subset, batch_size=2, progress=False)
    fallback = evaluate(MatchOnly(), small_willow, pair_indices=subset, progress=False)
    assert fallback.stats["images_forwarded"] == 0
    np.testing.assert_allclose(_arrays(fallback)[0], _arrays(reference)[0], atol=1e-4)


def test_bad_arguments(small_willow, tiny_model):
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(tiny_model, small_willow, batch_size=0)
    with pytest.raises(ValueError, match="max_bytes"):
        FeatureCache(max_bytes=-1)
    with pytest.raises(ValueError, match="fingerprint"):
        FeatureCache(directory="somewhere")
