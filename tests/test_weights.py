import hashlib
import os
import subprocess
import sys
import time

import pytest

from geocorr import weights
from geocorr.cli import main
from geocorr.weights import WeightsEntry, WeightsNotFoundError

OFFICIAL_SHA = "63389bd38267b3e6ee324d8e8f6357ae982d74e68d530596cfdfae1943be1092"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOCORR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A registered adapter whose only source is a local file:// "download"."""
    payload = b"fake LoRA bytes " * 100
    src = tmp_path / "server" / "fake_lora.pth"
    src.parent.mkdir()
    src.write_bytes(payload)
    entry = WeightsEntry(name="fake", kind="adapter", description="test", filename="fake_lora.pth",
                         sha256=hashlib.sha256(payload).hexdigest(), urls=(src.as_uri(),),
                         published_at="the test server")
    monkeypatch.setitem(weights.WEIGHTS, "fake", entry)
    return entry, src, payload


def test_released_geco_entry_has_the_published_hash():
    e = weights.WEIGHTS["geco"]
    assert e.sha256 == OFFICIAL_SHA and e.filename == "last_lora_weights.pth"
    assert not e.urls and "reginehartwig/geco" in e.published_at  # no invented URL


def test_fetch_downloads_from_a_source_verifies_and_caches(home, fake):
    _, src, payload = fake
    path = weights.fetch("fake")
    assert path == home / "adapters" / "fake" / "fake_lora.pth" and path.read_bytes() == payload
    src.unlink()  # the source is gone: the cache answers
    assert weights.fetch("fake") == path


def test_hash_mismatch_is_refused_and_not_cached(home, fake, monkeypatch, tmp_path):
    entry = fake[0]
    monkeypatch.setitem(weights.WEIGHTS, "fake", WeightsEntry(**{**entry.__dict__, "sha256": "0" * 64}))
    with pytest.raises(ValueError, match=r"not the 'fake' weights.*expected 0000"):
        weights.fetch("fake")
    assert not (home / "adapters" / "fake").exists() or not any((home / "adapters" / "fake").iterdir())
    other = tmp_path / "other.pth"
    other.write_bytes(b"something else")
    with pytest.raises(ValueError, match=r"other\.pth is not the 'geco' weights"):
        weights.add("geco", other)
    assert not weights.cache_path("geco").exists()


def test_corrupt_cached_file_is_named(home, fake):
    path = weights.fetch("fake")
    path.write_bytes(b"flipped")
    with pytest.raises(ValueError, match=r"cached file .*fake_lora\.pth.*delete it"):
        weights.fetch("fake")


def test_missing_weights_say_where_the_authors_publish_them(home):
    with pytest.raises(WeightsNotFoundError, match=r"last_lora_weights\.pth.*reginehartwig/geco.*"
                                                   r"geocorr weights add geco FILE"):
        weights.fetch("geco")


def test_add_installs_the_released_file_and_cli_lists_it(home, capsys):
    from pathlib import Path

    official = Path("/work/shared/data/geco-official/last_lora_weights.pth")
    if not official.is_file():
        pytest.skip("the released GECO file is not on this machine")
    assert main(["weights", "add", "geco", str(official)]) == 0
    assert "sha256 verified" in capsys.readouterr().out
    assert weights.sha256sum(weights.cache_path("geco")) == OFFICIAL_SHA
    assert main(["weights"]) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.split()[:1] == ["geco"])
    assert "cached" in line and "not cached" not in line and str(weights.cache_path("geco")) in line
    assert main(["weights", "add", "geco", str(home / "none.pth")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_offline_fails_fast_without_http_retries(home, monkeypatch):
    monkeypatch.setitem(weights.WEIGHTS, "remote", WeightsEntry(
        name="remote", kind="adapter", description="t", filename="r.pth", sha256="1" * 64,
        urls=("https://geocorr-unreachable.invalid/r.pth",), published_at="nowhere"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="offline or host unreachable"):
        weights.fetch("remote")
    assert weights.hub_local_only()
    print(f"offline fetch failed after {time.perf_counter() - start:.3f} s")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert not weights.reachable("https://geocorr-unreachable.invalid/r.pth")  # no such host


def test_offline_backbone_lookup_is_fast():
    # A hub id that is not cached, offline: the error comes at once (not after HTTP retries).
    # Timed inside the child process, after the imports; the figure is printed, the bound is loose.
    code = ("import time, geocorr, geocorr.methods.dinov2\n"
            "t = time.perf_counter()\n"
            "try:\n    geocorr.load('dinov2', backbone='facebook/dinov2-giant-not-cached')\n"
            "except OSError as e:\n    print('ERR', time.perf_counter() - t, str(e)[:80])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    print(f"offline backbone lookup: {out.stdout.strip()}")
    assert "ERR" in out.stdout, out.stderr[-2000:]
    assert float(out.stdout.split()[1]) < 5.0  # today's failure mode took 23-34 s


def test_listing_shows_backbones_cached_or_not(home, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    # A hub cache holding facebook/dinov2-small only (the layout huggingface_hub writes).
    repo = tmp_path / "hub" / "models--facebook--dinov2-small"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["weights", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    small = next(li for li in lines if li.split()[:1] == ["vits14"])
    base = next(li for li in lines if li.split()[:1] == ["vitb14"])
    assert " cached " in small and str(repo / "snapshots" / "abc123") in small
    assert "not cached" in base and "huggingface.co/facebook/dinov2-base" in base


def test_quiet_loading_silences_only_library_noise():
    import warnings

    from transformers.utils import logging as hf_logging

    import geocorr
    from geocorr.backbones import tiny_config

    assert hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # overrides pytest's own ignore of this warning
        geocorr.load("geco", backbone=tiny_config(), image_size=28, adapter=None)  # peft wraps the model
        with weights.quiet_loading():
            assert not hf_logging.is_progress_bar_enabled()
            warnings.warn("a real warning", UserWarning, stacklevel=1)
    messages = [str(w.message) for w in caught]
    assert not any("is_gradient_checkpointing" in m for m in messages), messages
    assert "a real warning" in messages  # everything else still reaches the user
    assert hf_logging.is_progress_bar_enabled()  # restored
