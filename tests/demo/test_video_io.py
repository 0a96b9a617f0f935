from fractions import Fraction

import numpy as np
import pytest

from geocorr.demo.video import VideoWriter, frame_rate, read_frames


def test_write_then_read_round_trip(square_video, square_frames):
    frames = list(read_frames(square_video))
    expected = square_frames
    assert len(frames) == len(expected)
    for got, want in zip(frames, expected, strict=True):
        assert got.shape == want.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 4  # lossy H.264, nearly exact
    assert frame_rate(square_video) == Fraction(10)


def test_odd_sizes_are_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=5) as writer:
        for _ in range(3):
            writer.write(np.full((15, 21, 3), 200, dtype=np.uint8))
    frames = list(read_frames(path))
    assert len(frames) == 3 and frames[0].shape == (16, 22, 3)


def test_writer_rejects_bad_frames(tmp_path):
    with VideoWriter(tmp_path / "a.mp4") as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((8, 8, 3), dtype=np.float32))
        writer.write(np.zeros((8, 8, 3), dtype=np.uint8))
        with pytest.raises(ValueError, match="differs from the first frame"):
            writer.write(np.zeros((8, 10, 3), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "a.mp4")
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "b.mp4", fps=0)
    with pytest.raises(ValueError, match=r"cannot write H.264 video to 'b.webm'; use one of .mp4, .mkv"):
        VideoWriter(tmp_path / "b.webm")
    with pytest.raises(ValueError, match="crf"):
        VideoWriter(tmp_path / "b.mkv", crf=60)


def test_reading_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        next(read_frames(tmp_path / "nothing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ValueError, match="cannot be decoded"):
        next(read_frames(junk))
    with pytest.raises(ValueError, match="cannot be decoded"):
        frame_rate(junk)
