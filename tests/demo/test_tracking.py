import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geocorr.demo.tracking import PointTracker, track_video
from geocorr.demo.video import read_frames
from geocorr.methods.base import Matches

# the square's centre in frame j: token (j, 1) -> pixel (14 j + 6.5, 20.5)
EXPECTED = np.array([[14 * j + 6.5, 20.5] for j in range(6)])


def test_tracker_follows_the_square(colour_matcher, square_frames):
    frames = square_frames
    tracker = PointTracker(colour_matcher, frames[0], [[6.5, 20.5], [70.0, 50.0]])
    points, scores = tracker(frames)
    assert points.shape == (6, 2, 2) and scores.shape == (6, 2)
    np.testing.assert_allclose(points[:, 0].numpy(), EXPECTED, atol=1e-4)
    np.testing.assert_allclose(scores[:, 0].numpy(), 1.0, atol=1e-5)  # the very same colour


def test_soft_refinement_stays_on_the_square(colour_matcher, square_frames):
    frames = square_frames
    tracker = PointTracker(colour_matcher, frames[0], [[6.5, 20.5]], refine="soft", window=3, temperature=0.01)
    points, _ = tracker(frames)
    np.testing.assert_allclose(points[:, 0].numpy(), EXPECTED, atol=1.0)


def test_momentum_updates_the_query_with_the_matched_feature(colour_matcher, square_frames):
    frames = square_frames
    fixed = PointTracker(colour_matcher, frames[0], [[35.0, 35.0]])
    before = fixed.query.clone()
    fixed(frames[1:3])
    torch.testing.assert_close(fixed.query, before)

    moving = PointTracker(colour_matcher, frames[0], [[35.0, 35.0]], momentum=1.0)  # a grey point
    points, _ = moving(frames[1:2])
    feats = colour_matcher.features([frames[1]])
    cell = feats.grids[0].image_to_grid(points[0])
    want = F.normalize(feats.dense[0, :, int(cell[0, 1]), int(cell[0, 0])], dim=0)
    torch.testing.assert_close(moving.query[0], want)


def test_tracker_bad_input(colour_matcher, square_frames):
    frame = square_frames[0]
    with pytest.raises(ValueError, match=r"points \(of the first frame\).*outside the 84×56 image"):
        PointTracker(colour_matcher, frame, [[100.0, 5.0]])
    with pytest.raises(ValueError, match="momentum"):
        PointTracker(colour_matcher, frame, [[1.0, 1.0]], momentum=2.0)
    with pytest.raises(ValueError, match="refine"):
        PointTracker(colour_matcher, frame, [[1.0, 1.0]], refine="best")


class ShiftMatcher:
    """A method without dense features: predicts every point 3 px to the right."""

    def match(self, img0, img1, points, context=None):
        pts = torch.as_tensor(points, dtype=torch.float32) + torch.tensor([3.0, 0.0])
        return Matches(pts, torch.ones(len(pts)))


def test_methods_without_features_are_matched_frame_by_frame(square_frames):
    frames = square_frames[:3]
    points, _ = PointTracker(ShiftMatcher(), frames[0], [[1.0, 2.0]])(frames)
    np.testing.assert_allclose(points.numpy(), [[[4.0, 2.0]]] * 3)
    with pytest.raises(ValueError, match="momentum needs a model with dense features"):
        PointTracker(ShiftMatcher(), frames[0], [[1.0, 2.0]], momentum=0.5)


def test_track_video_writes_video_and_csv(colour_matcher, square_video, tmp_path):
    out, table = tmp_path / "out.mp4", tmp_path / "tracks.csv"
    summary = track_video(colour_matcher, square_video, [[6.5, 20.5]], out=out, csv_path=table,
                          batch_size=4, progress=False)
    assert summary.frames == 6 and summary.fps > 0
    written = list(read_frames(out))
    assert len(written) == 6 and written[0].shape == (56, 84, 3)
    rows = list(csv.DictReader(table.open()))
    assert [int(r["frame"]) for r in rows] == list(range(6))
    np.testing.assert_allclose([[float(r["x"]), float(r["y"])] for r in rows], EXPECTED, atol=0.01)
    assert rows[5]["time_s"] == "0.5000"
    # the marker is drawn in the output at the tracked point of the last frame
    marker = written[5][20, 76].astype(int)
    assert np.abs(marker - written[5][50, 5].astype(int)).sum() > 60


def test_track_video_max_frames_and_bad_video(colour_matcher, square_video, tmp_path):
    summary = track_video(colour_matcher, square_video, [[6.5, 20.5]], max_frames=2, progress=False)
    assert summary.frames == 2
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="cannot be decoded"):
        track_video(colour_matcher, junk, [[1.0, 1.0]], progress=False)
    with pytest.raises(ValueError, match=r"cannot write H\.264 video to 'out\.webm'"):
        track_video(colour_matcher, square_video, [[1.0, 1.0]], out=tmp_path / "out.webm",
                    csv_path=tmp_path / "t.csv", progress=False)
    assert not (tmp_path / "t.csv").exists()  # refused before any work
    with pytest.raises(ValueError, match="batch_size"):
        track_video(colour_matcher, square_video, [[1.0, 1.0]], batch_size=0, progress=False)


def test_first_frame_returns_the_given_points(colour_matcher, square_video, tmp_path):
    table = tmp_path / "tracks.csv"
    given = [[20.3, 17.9], [70.2, 40.6]]  # off the token centres on purpose
    track_video(colour_matcher, square_video, given, csv_path=table, batch_size=4, progress=False)
    rows = [r for r in csv.DictReader(table.open()) if r["frame"] == "0"]
    np.testing.assert_allclose([[float(r["x"]), float(r["y"])] for r in rows], given, atol=0.005)
    assert all(float(r["score"]) == 1.0 for r in rows)
