"""Video frames in and out: video files through PyAV (``pip install av``) and folders of frames.

Frames are read lazily, one at a time, so a long video never sits in memory. A selection (``start``/``end`` in
seconds, every ``stride``-th frame, at most ``max_frames``) is resolved from the container's packet timestamps
before anything is decoded, so the number of selected frames is known up front.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..visualize import to_uint8_rgb
from .images import ImageReadError, find_images, load_image

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")


class VideoReadError(Exception):
    """A video input cannot be read. ``str(err)`` is a one-line reason."""


@dataclass(frozen=True)
class FrameSelection:
    """Which frames of a source are used: those with ``start <= t < end`` (seconds; ``end=None``: to the end),
    then every ``stride``-th, then at most ``max_frames``."""

    start: float = 0.0
    end: float | None = None
    stride: int = 1
    max_frames: int | None = None

    def __post_init__(self):
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ValueError(f"frame selection: need 0 <= start < end, got start {self.start}, end {self.end}")
        if self.stride < 1 or (self.max_frames is not None and self.max_frames < 1):
            raise ValueError("frame selection: stride and max_frames must be >= 1")

    def pick(self, times: list[float]) -> list[int]:
        """Indices into ``times`` (seconds, ascending) of the selected frames.

        >>> FrameSelection(start=1.0, end=3.0, stride=2).pick([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
        [2, 4]
        """
        inside = [i for i, t in enumerate(times) if t >= self.start - 1e-9 and (self.end is None or t < self.end)]
        chosen = inside[:: self.stride]
        return chosen[: self.max_frames] if self.max_frames is not None else chosen


class FrameSource:
    """The selected frames of a video file or a frame folder: ``len()``, ``fps``, ``size`` ``(H, W)``, ``stem``,
    and iteration over ``(frame number, H x W x 3 uint8)``.

    Args:
        path: a video file, or a folder of images (sorted by name; the stem is then the folder's name).
        selection: which frames.
        folder_fps: the frame rate of a frame folder (it has none of its own).
    """

    def __init__(self, path: str | Path, selection: FrameSelection | None = None, folder_fps: float = 30.0):
        self.path = Path(path)
        self.selection = selection or FrameSelection()
        if not self.path.exists():
            raise VideoReadError(f"{self.path}: no such file or folder")
        self.is_folder = self.path.is_dir()
        self.stem = self.path.name if self.is_folder else self.path.stem
        if self.is_folder:
            files, _ = find_images([self.path])
            files = sorted(files, key=lambda p: str(p.relative_to(self.path)))
            if not files:
                raise VideoReadError(f"{self.path}: no image files in the folder")
            self.fps = float(folder_fps)
            picked = self.selection.pick([i / self.fps for i in range(len(files))])
            self._files = [files[i] for i in picked]
            self._numbers = picked
            first = load_image(self._files[0]) if self._files else None
            self.size = tuple(first.shape[:2]) if first is not None else (0, 0)
        else:
            self._probe()
        if not len(self):
            raise VideoReadError(f"{self.path}: the selection {self.selection} holds no frames")

    def _probe(self) -> None:
        av = _import_av()
        try:
            with av.open(str(self.path)) as container:
                stream = _video_stream(container, self.path)
                rate = stream.average_rate or stream.base_rate or stream.guessed_rate
                self.fps = float(rate) if rate else 30.0
                tb = float(stream.time_base) if stream.time_base else 1.0 / self.fps
                self.size = (int(stream.codec_context.height), int(stream.codec_context.width))
                pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0)
        except av.error.FFmpegError as exc:
            raise VideoReadError(f"{self.path}: cannot read the video ({str(exc).splitlines()[0]})") from None
        if not pts:
            raise VideoReadError(f"{self.path}: the video stream holds no frames")
        t0 = pts[0]
        picked = self.selection.pick([(p - t0) * tb for p in pts])
        self._pts = [pts[i] for i in picked]
        self._numbers = picked

    def __len__(self) -> int:
        return len(self._numbers)

    @property
    def numbers(self) -> list[int]:
        """The frame number (in the whole source) of each selected frame."""
        return list(self._numbers)

    def frames(self, skip: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """``(frame number, frame)`` for the selected frames after the first ``skip`` of them."""
        if self.is_folder:
            for number, f in zip(self._numbers[skip:], self._files[skip:]):
                try:
                    arr = load_image(f)
                except ImageReadError as exc:
                    raise VideoReadError(f"{f}: {exc}") from None
                if arr.dtype != np.uint8:
                    arr = to_uint8_rgb(arr)
                if tuple(arr.shape[:2]) != self.size:
                    raise VideoReadError(f"{f}: frame size {arr.shape[1]}x{arr.shape[0]} differs from the first "
                                         f"frame's {self.size[1]}x{self.size[0]}")
                yield number, arr
            return
        av = _import_av()
        wanted = dict(zip(self._pts[skip:], self._numbers[skip:]))
        if not wanted:
            return
        last = max(wanted)
        try:
            with av.open(str(self.path)) as container:
                stream = _video_stream(container, self.path)
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    if frame.pts in wanted:
                        yield wanted.pop(frame.pts), frame.to_ndarray(format="rgb24")
                    if frame.pts is not None and frame.pts >= last and not wanted:
                        break
        except av.error.FFmpegError as exc:
            raise VideoReadError(f"{self.path}: decoding failed ({str(exc).splitlines()[0]})") from None
        if wanted:
            raise VideoReadError(f"{self.path}: {len(wanted)} selected frame(s) could not be decoded")

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return self.frames()


class ArrayFrameSource:
    """Frames already in memory, ``[T, H, W, 3]`` uint8 (e.g. an evaluation sequence), with the interface of
    :class:`FrameSource` (``len()``, ``fps``, ``size``, ``stem``, ``path``, ``numbers``, :meth:`frames`), so the
    video pipeline runs on them unchanged. ``path`` only names the frames in records and messages."""

    is_folder = False

    def __init__(self, frames: np.ndarray, stem: str, fps: float = 30.0, path: str | Path | None = None):
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
            raise VideoReadError(f"{path or stem}: frames must be a non-empty [T, H, W, 3] uint8 array, got "
                                 f"{frames.dtype} {tuple(frames.shape)}")
        self._frames = frames
        self.stem = stem
        self.fps = float(fps)
        self.path = Path(path) if path is not None else Path(stem)
        self.size = (int(frames.shape[1]), int(frames.shape[2]))
        self.selection = FrameSelection()

    def __len__(self) -> int:
        return int(self._frames.shape[0])

    @property
    def numbers(self) -> list[int]:
        return list(range(len(self)))

    def frames(self, skip: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        for k in range(skip, len(self)):
            yield k, self._frames[k]

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return self.frames()


def _import_av():
    try:
        import av
    except ImportError:
        raise VideoReadError("video files need PyAV: pip install av (or marigold-toolkit[video])") from None
    return av


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise VideoReadError(f"{path}: no video stream")
    return container.streams.video[0]


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


class VideoWriter:
    """An H.264 (or MPEG-4 where libx264 is missing) ``.mp4`` written atomically: frames go to a hidden temporary
    file that becomes ``path`` on :meth:`close`; :meth:`abort` (or an exception inside ``with``) removes it.
    Odd frame sizes are padded by one pixel (the encoders' 4:2:0 chroma needs even sizes)."""

    def __init__(self, path: str | Path, fps: float, crf: int = 18):
        av = _import_av()
        self.path = Path(path)
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = _rate(fps)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(crf)}
        self._size = None

    def write(self, frame: np.ndarray) -> None:
        """One ``H x W x 3`` uint8 frame (every frame the size of the first)."""
        av = _import_av()
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (h, w)
            self._stream.height, self._stream.width = h + h % 2, w + w % 2
        elif (h, w) != self._size:
            raise ValueError(f"video frame {w}x{h} differs from the first frame's {self._size[1]}x{self._size[0]}")
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self._container.close()
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _rate(fps: float):
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)
