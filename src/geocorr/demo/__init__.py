"""Seeing correspondences: video point tracking (:mod:`.tracking`, :mod:`.video`) and the browser demo
(:mod:`.app`, needs the ``demo`` extra's gradio)."""
from .tracking import PointTracker, TrackingSummary, track_video
from .video import VideoWriter, frame_rate, read_frames

__all__ = ["PointTracker", "TrackingSummary", "VideoWriter", "frame_rate", "read_frames", "track_video"]
