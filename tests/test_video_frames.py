import numpy as np
import pytest

from geocorr.demo.video import VideoWriter, frame_count, read_frames


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_frame_count_matches_the_decoded_frames(tmp_path, suffix):
    path = tmp_path / f"v{suffix}"
    with VideoWriter(path, fps=10) as writer:
        for k in range(7):
            writer.write(np.full((32, 48, 3), 30 * k, dtype=np.uint8))
    decoded = sum(1 for _ in read_frames(path))
    assert decoded == 7 and frame_count(path) == 7


def test_frame_count_of_a_missing_or_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        frame_count(tmp_path / "none.mp4")
    (tmp_path / "x.mp4").write_text("not a video")
    with pytest.raises(ValueError, match=r"x\.mp4"):
        frame_count(tmp_path / "x.mp4")


def test_writing_after_close_is_refused_not_overwritten(tmp_path):
    path = tmp_path / "v.mp4"
    writer = VideoWriter(path, fps=10)
    with writer:
        writer.write(np.zeros((16, 16, 3), dtype=np.uint8))
    size = path.stat().st_size
    with pytest.raises(ValueError, match="already closed"):
        writer.write(np.zeros((16, 16, 3), dtype=np.uint8))
    assert path.stat().st_size == size
