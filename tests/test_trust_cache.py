"""Issue 16/17: the on-disk evaluation feature cache is safe, verified and holds one image per entry."""
import hashlib
import shutil

import numpy as np
import pytest
import torch

import geocorr
from geocorr.backbones import tiny_config
from geocorr.datasets.pf_willow import load_pf_willow
from geocorr.evaluation.cache import FeatureCache, model_fingerprint
from geocorr.evaluation.runner import evaluate

FINGERPRINT = "model-and-config"


@pytest.fixture(scope="module")
def willow(tmp_path_factory, copy_willow):
    """1 folder x 3 real PF-Willow images (copied: the tests change them): 6 ordered pairs."""
    return load_pf_willow(copy_willow(tmp_path_factory.mktemp("willow"), "car(G)"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return geocorr.load("dinov2", backbone=tiny_config(), image_size=56, upsample="none")


def _predicted(preds):
    return np.stack([p.predicted for p in preds.pairs])


def _files(cache):
    return sorted(cache.directory.glob("*.safetensors"))


def test_each_entry_holds_only_its_own_image(tmp_path, model, willow):
    paths = [str(a.path) for a in willow.images()]
    batch = model.features(paths)
    for cache in (FeatureCache(), FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT)):
        cache.put(paths[0], batch[0])
        kept = cache.get(paths[0]).dense
        assert kept.untyped_storage().nbytes() == kept.numel() * kept.element_size()  # not the whole batch
        assert torch.equal(kept, batch.dense[:1])
    on_disk = _files(FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT))[0].stat().st_size
    assert on_disk < batch.dense.numel() * 4  # one image's features, not three


def test_a_planted_pickle_is_never_unpickled(tmp_path, model, willow):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    reference = evaluate(model, willow, batch_size=1, progress=False)
    folder = tmp_path / "cache" / FINGERPRINT
    folder.mkdir(parents=True)
    cache = FeatureCache(directory=tmp_path / "cache", fingerprint=FINGERPRINT)
    for image in willow.images():
        key = str(image.path)
        torch.save(Payload(), folder / (hashlib.sha1(key.encode()).hexdigest() + ".pt"))  # the former layout
        torch.save(Payload(), cache._file(key))  # and the current file name
    with pytest.warns(UserWarning, match="not used"):
        planted = evaluate(model, willow, cache=cache, batch_size=1, progress=False)
    assert not marker.exists()
    assert cache.rejected == 3 and cache.disk_hits == 0
    np.testing.assert_array_equal(_predicted(planted), _predicted(reference))


def test_swapped_damaged_and_stale_files_are_recomputed(tmp_path, model, willow):
    reference = evaluate(model, willow, batch_size=1, progress=False)
    first = FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT)
    evaluate(model, willow, cache=first, progress=False)
    a, b, c = [first._file(str(image.path)) for image in willow.images()]
    a_bytes = a.read_bytes()
    a.write_bytes(b.read_bytes())  # swapped
    b.write_bytes(a_bytes)
    raw = bytearray(c.read_bytes())
    raw[-5] ^= 0x40  # one bit in the last feature value
    c.write_bytes(bytes(raw))
    cache = FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT)
    with pytest.warns(UserWarning, match="not used") as warned:
        again = evaluate(model, willow, cache=cache, batch_size=1, progress=False)
    assert cache.rejected == 3 and cache.disk_hits == 0
    messages = " ".join(str(w.message) for w in warned)
    assert "holds the features of" in messages and "damaged" in messages
    np.testing.assert_array_equal(_predicted(again), _predicted(reference))

    # the files were re-written: a third run reads them all
    third = FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT)
    evaluate(model, willow, cache=third, progress=False)
    assert third.disk_hits == 3 and third.rejected == 0

    # an image changed in place (same path): its cached features are stale
    image = willow.images()[0].path
    other = willow.images()[1].path
    saved = image.read_bytes()
    shutil.copy(other, image)
    try:
        stale = FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT)
        with pytest.warns(UserWarning, match="stale"):
            changed = evaluate(model, willow, cache=stale, batch_size=1, progress=False)
        fresh = evaluate(model, willow, batch_size=1, progress=False)
        assert stale.rejected == 1
        np.testing.assert_array_equal(_predicted(changed), _predicted(fresh))
    finally:
        image.write_bytes(saved)


def test_another_fingerprint_never_reads_the_files(tmp_path, model, willow):
    evaluate(model, willow, cache=FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT), progress=False)
    other = FeatureCache(directory=tmp_path, fingerprint=model_fingerprint(model, {"image_size": 28}))
    evaluate(model, willow, cache=other, progress=False)
    assert other.disk_hits == 0 and other.rejected == 0


def test_disk_entries_must_be_one_image(tmp_path, model, willow):
    paths = [str(a.path) for a in willow.images()]
    cache = FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT)
    with pytest.raises(TypeError, match="Features of one image"):
        cache.put(paths[0], model.features(paths))


def test_every_token_grid_field_round_trips(tmp_path):
    from geocorr.grid import TokenGrid
    from geocorr.methods.base import Features

    grid = TokenGrid((300, 200), (56, 42), (56, 56), 14, offset=(0, 7))  # centred padding (GeoAware)
    features = Features(torch.randn(1, 8, 4, 4), [grid])
    key = str(tmp_path / "no-such-image.png")
    FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT).put(key, features)
    back = FeatureCache(directory=tmp_path, fingerprint=FINGERPRINT).get(key)
    assert back.grids == [grid] and torch.equal(back.dense, features.dense)
