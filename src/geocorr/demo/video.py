"""Streaming video reading and writing with PyAV: frames one at a time, never the whole video.

Frames are (H, W, 3) uint8 RGB arrays. Errors name the file and what was wrong.
"""
from __future__ import annotations

from collections.abc import Generator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["SUFFIXES", "VideoWriter", "frame_count", "frame_rate", "read_frames"]

DEFAULT_FPS = 25
SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")  # containers that hold H.264


def _open(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video: no such file: {path}")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise ValueError(f"video: {path} cannot be decoded as a video ({err})") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"video: {path} has no video stream")
    return container


def frame_rate(path: str | Path) -> Fraction:
    """Average frames per second of the first video stream (25 when the file does not say)."""
    with _open(path) as container:
        rate = container.streams.video[0].average_rate
    return Fraction(rate) if rate else Fraction(DEFAULT_FPS)


def frame_count(path: str | Path) -> int | None:
    """Number of frames of the first video stream as the container declares it (for progress bars).

    The stream's frame count when the container stores one (MP4, MOV); else duration × average
    rate, rounded (MKV, AVI); None when neither is known. It is the container's word, not a decode.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        rate = stream.average_rate
        if stream.duration and stream.time_base and rate:
            return max(1, round(float(stream.duration * stream.time_base * rate)))
        if container.duration and rate:  # container duration is in microseconds (av.time_base)
            return max(1, round(container.duration / av.time_base * float(rate)))
    return None


def read_frames(path: str | Path) -> Generator[np.ndarray, None, None]:
    """Decode the first video stream frame by frame.

    Yields (H, W, 3) uint8 RGB frames. Raises FileNotFoundError for a missing file and ValueError for
    a file that is not a decodable video (also when decoding fails part-way, naming the frame).
    """
    container = _open(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    count = 0
    try:
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")
            count += 1
    except av.FFmpegError as err:
        raise ValueError(f"video: {path}: decoding failed after {count} frame(s) ({err})") from None
    finally:
        container.close()


class VideoWriter:
    """Write RGB frames to an H.264 video file (.mp4, .mkv, .mov or .avi), one frame at a time.

    Use as a context manager; odd frame sizes are padded by one black pixel (H.264 needs even sizes).
    crf: x264 quality (0 lossless … 51 worst; 23 is x264's default).
    """

    def __init__(self, path: str | Path, fps: float | Fraction = DEFAULT_FPS, crf: int = 23):
        self.path = Path(path)
        if self.path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"out: cannot write H.264 video to {self.path.name!r}; "
                             f"use one of {', '.join(SUFFIXES)}")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"out: the folder {self.path.parent} does not exist")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must lie in 0..51, got {crf}")
        self.fps = Fraction(fps).limit_denominator(1001)
        self.crf = crf
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _streams(self, height: int, width: int) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream]:
        """The open file and its H.264 stream; opened at the first frame (of size height × width)."""
        if self._container is None and self._stream is not None:
            raise ValueError(f"out: {self.path.name} is already closed; open a new VideoWriter")
        if self._container is None or self._stream is None:
            container = av.open(str(self.path), mode="w")
            stream = container.add_stream("libx264", rate=self.fps, options={"crf": str(self.crf)})
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            self._container, self._stream, self._size = container, stream, (height, width)
        return self._container, self._stream

    def write(self, frame: np.ndarray) -> None:
        """frame: (H, W, 3) uint8 RGB, the same size for every frame of a video."""
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
                and frame.dtype == np.uint8):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"frame: expected an (H, W, 3) uint8 array, got {got}")
        container, stream = self._streams(*frame.shape[:2])
        if frame.shape[:2] != self._size:
            raise ValueError(f"frame: size {frame.shape[:2]} differs from the first frame's {self._size}")
        h, w = frame.shape[:2]
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and close the file (idempotent)."""
        container, stream = self._container, self._stream
        if container is None or stream is None:
            return
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        self._container = None
