"""Video depth benchmarks: the evaluation splits of RollingDepth (Ke et al., CVPR 2025; prs-eth/RollingDepth,
``data_split/``), read in the datasets' published on-disk formats.

The authors publish one CSV file per sequence in a folder per split; their evaluation code is not published
(their README: "Evaluation on test datasets: coming soon"). Every CSV has the header ``rgb,depth`` and one line per
frame, ``<rgb path>,<depth path>``, in temporal order (the frame order of the sequence is the line order), no
trailing newline. The file name is the sequence: ``<name>.csv``, where ``^`` stands for a folder separator
(``test^cab_e_3rd.csv`` is the sequence ``test/cab_e_3rd``), and the CSV paths are relative to the sequence's
folder ``<root>/<sequence>/``. The split is that folder of CSV files (default: the split's folder name, looked up
in the data root and in ``<root>/data_split/<dataset>/``, i.e. a copy of the authors' ``data_split``); ``split=``
may name another folder (e.g. the authors' smaller ``*_sub10`` / ``*_sub20`` subsets) or one CSV file. Sequences
come in sorted file-name order.

A sample is a whole sequence (:class:`VideoSample`): frames ``[T, H, W, 3]`` uint8, ground-truth depth
``[T, H, W]`` float32 in metres, the valid mask ``[T, H, W]`` (the dataset's depth range, strict on both ends,
non-finite values invalid) and, where the format has them, intrinsics ``[T, 3, 3]`` and camera-to-world poses
``[T, 4, 4]`` (OpenCV convention), which make the temporal alignment error (TAE) computable.

What the four splits reproduce: the ScanNet and Bonn splits are exactly DepthCrafter's video benchmark
(Tencent/DepthCrafter ``benchmark/``): the first 100 ScanNet test scenes (scene0707_00 ... scene0806_00), frames
0, 3, ..., 267 (90 frames); five Bonn RGB-D Dynamic sequences, 110 frames each. Their protocol settings are
DepthCrafter's (``benchmark/eval/eval.py`` and ``eval.sh``): valid ``1e-3 < d < max``, max 10 m for both, ScanNet
cut to rows 8:-8 and columns 11:-11, Bonn cut to even sizes, one least-squares scale and shift for the whole
sequence (DepthCrafter fits disparity, the space of every model it compares), the aligned depth clipped to
``[1e-3, max]``, per-frame metrics averaged over the frames, then over the sequences. Here the fit runs in the
prediction's own space (:meth:`~marigold_toolkit.tasks.base.Task.evaluation_alignment`: disparity for RollingDepth,
depth for Marigold depth models). PointOdyssey's and DyDToF's ranges are not published; see their classes.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ...io.dataset_files import (
    SplitEntry,
    read_npy,
    read_png_depth,
    read_rgb_uint8,
    read_split_file,
    stem_from_relpath,
)
from ...tasks.depth import depth_range_mask
from .base import Benchmark, InferenceDefaults

logger = logging.getLogger(__name__)

#: ``^`` in a split CSV's file name stands for ``/`` in the sequence's path
SEQUENCE_SEPARATOR = "^"


@dataclass
class VideoSample:
    """One evaluation sequence.

    Attributes:
        stem: unique, filesystem-safe id of the sequence (``test/cab_e_3rd`` -> ``test__cab_e_3rd``); names the
            cached prediction and the per-sequence CSV row.
        frames: ``[T, H, W, 3]`` uint8 input frames (after the benchmark's cut, if any).
        gt: ``[T, H, W]`` float32 ground-truth depth in metres (0 where the file has none).
        valid_mask: ``[T, H, W]`` bool, the pixels that are scored.
        intrinsics: ``[T, 3, 3]`` pinhole intrinsics of the (cut) frames in pixels, or ``None``.
        poses: ``[T, 4, 4]`` camera-to-world transforms (OpenCV: x right, y down, z forward), or ``None``.
        meta: the sequence's path, its CSV file and the frames' file names.
    """

    stem: str
    frames: np.ndarray
    gt: np.ndarray
    valid_mask: np.ndarray
    intrinsics: np.ndarray | None = None
    poses: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def has_cameras(self) -> bool:
        return self.intrinsics is not None and self.poses is not None


class VideoBenchmark(Benchmark):
    """A RollingDepth evaluation split: a folder of per-sequence CSV files plus the dataset's files under ``root``
    (module docstring). Subclasses set the split folder and decode one frame."""

    kind = "video benchmark"
    task = "depth"
    split_repository = "prs-eth/RollingDepth"
    #: one least-squares scale and shift for the whole sequence, in the prediction's own space
    alignment = "least_squares"
    #: frames per sequence in the authors' split (documentation; the CSV files hold them)
    num_frames: int | None = None
    #: the folder of ``data_split/`` in the authors' repository that holds this dataset's splits
    dataset_folder: str = ""
    #: frame rate recorded with the cached predictions (the datasets' nominal rate; no effect on the numbers)
    fps: float = 30.0
    #: the video pipeline's seed unless ``--seed`` says otherwise (the processing resolution and steps are the
    #: model's or the preset's)
    inference = InferenceDefaults(processing_resolution=0, seed=0)

    # -- the split: a folder of CSV files ------------------------------------------------------------------------
    def _split_names(self) -> tuple[str, ...]:
        return (self.split_file, f"data_split/{self.dataset_folder}/{self.split_file}")

    def default_split_path(self) -> Path:
        folder = self.data_folder()
        for name in self._split_names():
            if (folder / name).exists():
                return folder / name
        return folder / self.split_file

    def read_split(self, path: Path) -> list[SplitEntry]:
        """One entry per sequence: the CSV files of the folder ``path`` in sorted order, or the CSV file ``path``."""
        path = Path(path)
        if path.is_dir():
            csvs = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
            if not csvs:
                raise FileNotFoundError(f"{path}: no .csv sequence files in the split folder of {self.kind} "
                                        f"'{self.name}' (expected the authors' `{self.split_source}`)")
        elif path.is_file():
            csvs = [path]
        else:
            raise FileNotFoundError(
                f"{path}: split folder for {self.kind} '{self.name}' not found; copy the authors' "
                f"`{self.split_source}` from {self.split_repository} into the data folder or pass split=...")
        entries, seen = [], {}
        for csv in csvs:
            entry = self.read_sequence(csv)
            if entry.stem in seen:
                raise ValueError(f"{csv}: sequence id {entry.stem!r} repeats {seen[entry.stem]}; ids must be unique")
            seen[entry.stem] = csv.name
            entries.append(entry)
        return entries

    def read_sequence(self, csv: Path) -> SplitEntry:
        """The entry of one sequence CSV: ``stem`` from the file name, ``paths = (sequence folder,)`` and
        ``extra["frames"]``: one :class:`SplitEntry` per CSV line, its paths relative to the data root."""
        sequence = csv.stem.replace(SEQUENCE_SEPARATOR, "/")
        if not sequence.strip("/"):
            raise ValueError(f"{csv}: the file name names no sequence")

        def parse(cols: list[str], line_no: int) -> SplitEntry | None:
            if line_no == 1 and [c.lower() for c in cols[:2]] == ["rgb", "depth"]:
                return None  # the header
            if not cols[0] or not cols[1]:
                raise ValueError(f"{csv}:{line_no}: empty rgb or depth path: {','.join(cols)!r}")
            rgb, depth = f"{sequence}/{cols[0]}", f"{sequence}/{cols[1]}"
            return SplitEntry(stem_from_relpath(cols[0]), (rgb, depth), line_no)

        frames = read_split_file(csv, parse, min_columns=2, unique=True, delimiter=",")
        if not frames:
            raise ValueError(f"{csv}: the sequence CSV lists no frames (expected 'rgb,depth' lines)")
        return SplitEntry(stem_from_relpath(f"{sequence}.csv"), (sequence,), 0,
                          {"sequence": sequence, "split_file": str(csv), "frames": frames})

    # -- one frame ------------------------------------------------------------------------------------------------
    def read_rgb(self, frame: SplitEntry) -> np.ndarray:
        return read_rgb_uint8(self.source, frame.paths[0])

    def decode_depth(self, frame: SplitEntry) -> np.ndarray:
        """The frame's depth file -> ``[H, W]`` float32 metres."""
        raise NotImplementedError

    def prepare(self, rgb: np.ndarray, depth: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
        """Hook for what applies to image and depth themselves (resizing, the benchmark's cut); ``where`` names the
        frame in messages."""
        return rgb, depth

    def cameras(self, entry: SplitEntry, hw: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(intrinsics [T, 3, 3], poses [T, 4, 4])`` of the sequence's (prepared) frames of size ``hw``, or
        ``(None, None)`` where the format has no cameras or the files are absent (default)."""
        return None, None

    def valid_mask(self, depth: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.isfinite(depth) & depth_range_mask(np.nan_to_num(depth, nan=0.0), self.min_depth,
                                                         self.max_depth)

    # -- one sequence ---------------------------------------------------------------------------------------------
    def load(self, entry: SplitEntry) -> VideoSample:
        csv = entry.extra["split_file"]
        frames_in = entry.extra["frames"]
        rgbs, depths = None, None
        hw = None
        for k, frame in enumerate(tqdm(frames_in, desc=f"{self.name}: {entry.stem}", unit="frame", leave=False,
                                       disable=None)):
            where = f"{csv}:{frame.line_no}"
            rgb, depth = self.prepare(self.read_rgb(frame), self.decode_depth(frame), where)
            if rgb.shape[:2] != depth.shape:
                raise ValueError(f"{where}: image is {rgb.shape[0]}x{rgb.shape[1]} but depth is "
                                 f"{depth.shape[0]}x{depth.shape[1]}")
            if hw is None:
                hw = depth.shape
                rgbs = np.empty((len(frames_in), *hw, 3), dtype=np.uint8)
                depths = np.empty((len(frames_in), *hw), dtype=np.float32)
            elif depth.shape != hw:
                raise ValueError(f"{where}: frame is {depth.shape[0]}x{depth.shape[1]} but the sequence's first "
                                 f"frame is {hw[0]}x{hw[1]}")
            rgbs[k], depths[k] = rgb, depth
        intrinsics, poses = self.cameras(entry, hw)
        meta = {"sequence": entry.extra["sequence"], "split_file": csv,
                "rgb_paths": [f.paths[0] for f in frames_in], "depth_paths": [f.paths[1] for f in frames_in]}
        return VideoSample(entry.stem, rgbs, depths, self.valid_mask(depths), intrinsics, poses, meta)

    def scoring_options(self, sample: VideoSample, alignment: str | None = None) -> dict[str, Any]:
        """The keyword arguments of :meth:`~marigold_toolkit.tasks.base.Task.score_video` for ``sample``: the mask,
        the alignment (``alignment`` or the benchmark's), the depth range and the cameras."""
        return {"mask": sample.valid_mask, "alignment": alignment or self.alignment, "min_depth": self.min_depth,
                "max_depth": self.max_depth, "intrinsics": sample.intrinsics, "poses": sample.poses}

    def predict(self, predictor, sample, settings):  # pragma: no cover - the video runner predicts sequences
        raise TypeError(f"{self.name} is a video benchmark: evaluate it with evaluate_video_benchmark")


def _text_matrix(data: bytes, what: str, shape: tuple[int, int]) -> np.ndarray:
    try:
        m = np.loadtxt(io.BytesIO(data), dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{what}: not a whitespace-separated matrix ({err})") from None
    if m.shape != shape:
        raise ValueError(f"{what}: expected a {shape[0]}x{shape[1]} matrix, got {m.shape[0]}x{m.shape[1]}")
    return m


class ScanNetVideo(VideoBenchmark):
    """ScanNet v2 test scenes as the RollingDepth authors' split names them (DepthCrafter's ScanNet video set).

    Split folder (default ``<root>/rgbd_test_90frame_crop``, the authors'
    ``data_split/scannet/rgbd_test_90frame_crop``): 100 files ``scene0707_00.csv`` ... ``scene0806_00.csv``, 90
    lines each after the header: ``color/<n>.jpg,depth/<n>.png`` for n = 0, 3, ..., 267.
    ``rgbd_test_90frame_crop_sub20`` is the authors' 20-scene subset (``split=``).

    Files (ScanNet's SensReader export of ``scans_test``): ``<root>/<scene>/color/<n>.jpg`` (8-bit RGB),
    ``<root>/<scene>/depth/<n>.png`` (uint16, millimetres, 0 = no measurement, 640x480); optional, for TAE:
    ``<root>/<scene>/intrinsic/intrinsic_depth.txt`` (4x4, the upper-left 3x3 is K of the depth frame) and
    ``<root>/<scene>/pose/<n>.txt`` (4x4 camera-to-world).

    GT = PNG / 1000 (metres). A colour frame of another size than the depth (SensReader writes 1296x968) is resized
    to the depth frame (bilinear). Image and depth are then cut to rows 8:-8 and columns 11:-11 (DepthCrafter's
    crop, which the split's name refers to; 464x618), and K's principal point moves by (-11, -8). Valid =
    1e-3 < d < 10. Poses that are not finite (ScanNet's lost tracking) drop the sequence's cameras (no TAE).
    """

    name = "scannet-video"
    split_file = "rgbd_test_90frame_crop"
    dataset_folder = "scannet"
    split_source = "data_split/scannet/rgbd_test_90frame_crop"
    num_samples = 100
    num_frames = 90
    min_depth = 1e-3
    max_depth = 10.0
    #: (top, bottom, left, right) pixels cut off every frame
    cut = (8, 8, 11, 11)

    def decode_depth(self, frame):
        return read_png_depth(self.source, frame.paths[1], 1000.0)

    def prepare(self, rgb, depth, where):
        h, w = depth.shape
        if rgb.shape[:2] != (h, w):
            rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
        top, bottom, left, right = self.cut
        if h <= top + bottom or w <= left + right:
            raise ValueError(f"{where}: frame {h}x{w} is smaller than the benchmark's cut {self.cut}")
        return (np.ascontiguousarray(rgb[top : h - bottom, left : w - right]),
                np.ascontiguousarray(depth[top : h - bottom, left : w - right]))

    def cameras(self, entry, hw):
        sequence = entry.extra["sequence"]
        k_path = f"{sequence}/intrinsic/intrinsic_depth.txt"
        frames = entry.extra["frames"]
        pose_paths = [f"{sequence}/pose/{Path(f.paths[0]).stem}.txt" for f in frames]
        if not self.source.exists(k_path) or not all(self.source.exists(p) for p in pose_paths):
            logger.debug("%s: no intrinsic_depth.txt or pose files; no TAE for this sequence", sequence)
            return None, None
        K = _text_matrix(self.source.read_bytes(k_path), self.describe(k_path), (4, 4))[:3, :3].copy()
        K[0, 2] -= self.cut[2]
        K[1, 2] -= self.cut[0]
        poses = np.stack([_text_matrix(self.source.read_bytes(p), self.describe(p), (4, 4)) for p in pose_paths])
        if not np.isfinite(poses).all():
            logger.warning("%s: some poses are not finite (lost tracking); no TAE for this sequence", sequence)
            return None, None
        return np.broadcast_to(K, (len(frames), 3, 3)).copy(), poses


class BonnVideo(VideoBenchmark):
    """Bonn RGB-D Dynamic, five sequences as the RollingDepth authors' split names them (DepthCrafter's Bonn set).

    Split folder (default ``<root>/5_seq_110frame``, the authors' ``data_split/bonn_rgbd/5_seq_110frame``):
    ``rgbd_bonn_balloon2.csv``, ``rgbd_bonn_crowd2.csv``, ``rgbd_bonn_crowd3.csv``,
    ``rgbd_bonn_person_tracking2.csv``, ``rgbd_bonn_synchronous.csv``, 110 lines each after the header:
    ``rgb/<timestamp>.png,depth/<timestamp>.png`` (colour and depth have their own timestamps; the CSV pairs them).

    Files (the dataset's archives extracted): ``<root>/<sequence>/rgb/<timestamp>.png`` (8-bit RGB, 640x480) and
    ``<root>/<sequence>/depth/<timestamp>.png`` (uint16, TUM convention: depth x 5000, 0 = no measurement).

    GT = PNG / 5000 (metres); frames cut to even height and width (DepthCrafter; 640x480 stays as it is); valid =
    1e-3 < d < 10. No cameras: the dataset's ``groundtruth.txt`` is a motion-capture trajectory in TUM format whose
    calibration to the camera is not part of the split, so no TAE.
    """

    name = "bonn-video"
    split_file = "5_seq_110frame"
    dataset_folder = "bonn_rgbd"
    split_source = "data_split/bonn_rgbd/5_seq_110frame"
    num_samples = 5
    num_frames = 110
    min_depth = 1e-3
    max_depth = 10.0

    def decode_depth(self, frame):
        return read_png_depth(self.source, frame.paths[1], 5000.0)

    def prepare(self, rgb, depth, where):
        h, w = depth.shape
        he, we = h - h % 2, w - w % 2
        return rgb[:he, :we], depth[:he, :we]


_PO_FRAME = re.compile(r"(\d+)\D*$")


class PointOdysseyVideo(VideoBenchmark):
    """PointOdyssey (v1.2) sequences as the RollingDepth authors' split selects them.

    Split folder (default ``<root>/selected_250frame_masked``, the authors'
    ``data_split/pointodyssey/selected_250frame_masked``): 35 files ``<split>^<sequence>.csv`` (``test^cab_e_3rd.csv``,
    ``train^dancing.csv``, ...), 250 lines each after the header: ``rgbs/rgb_XXXXX.jpg,depths_masked/depth_XXXXX.png``
    (consecutive frame numbers). ``selected_250frame_masked_sub10`` is the authors' 10-sequence subset (``split=``).

    Files: ``<root>/<split>/<sequence>/rgbs/rgb_XXXXX.jpg`` (8-bit RGB, 960x540) and
    ``<root>/<split>/<sequence>/depths_masked/depth_XXXXX.png`` (uint16). ``depths_masked/`` is the authors' own
    folder (the public release has ``depths/``); it is read with the public encoding, depth = PNG / 65535 x 1000
    metres (PointOdyssey's ``utils/reprojection.py``), with 0 = masked. Optional, for TAE:
    ``<root>/<split>/<sequence>/anno.npz`` (``annot.npz`` accepted) with ``intrinsics [N, 3, 3]`` and
    ``extrinsics [N, 4, 4]`` (world-to-camera, the standard pinhole model since v1.1), indexed by the frame number
    in the RGB file name; poses = inverse extrinsics.

    Valid = 1e-3 < d < 1000: the authors' cap is not published; 1000 m is the encoding's saturated value.
    """

    name = "pointodyssey-video"
    split_file = "selected_250frame_masked"
    dataset_folder = "pointodyssey"
    split_source = "data_split/pointodyssey/selected_250frame_masked"
    num_samples = 35
    num_frames = 250
    min_depth = 1e-3
    max_depth = 1000.0
    #: PNG value per metre: depth = PNG / 65535 x 1000
    depth_scale = 65535.0 / 1000.0
    annotation_files = ("anno.npz", "annot.npz")

    def decode_depth(self, frame):
        return read_png_depth(self.source, frame.paths[1], self.depth_scale)

    def cameras(self, entry, hw):
        sequence = entry.extra["sequence"]
        found = [f"{sequence}/{n}" for n in self.annotation_files if self.source.exists(f"{sequence}/{n}")]
        if not found:
            logger.debug("%s: no anno.npz; no TAE for this sequence", sequence)
            return None, None
        where = self.describe(found[0])
        local = self.source.local_path(found[0])  # a folder root: np.load reads only the two arrays
        try:
            anno = np.load(local if local is not None else io.BytesIO(self.source.read_bytes(found[0])),
                           allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"{where}: cannot read the annotation file ({err})") from None
        if not hasattr(anno, "files"):
            raise ValueError(f"{where}: expected an .npz archive of arrays, got a single array")
        try:
            if "intrinsics" not in anno.files or "extrinsics" not in anno.files:
                raise ValueError(f"{where}: needs 'intrinsics' and 'extrinsics' arrays, has {sorted(anno.files)}")
            ks, exts = np.asarray(anno["intrinsics"], np.float64), np.asarray(anno["extrinsics"], np.float64)
        finally:
            anno.close()
        if ks.ndim != 3 or ks.shape[1:] != (3, 3) or exts.ndim != 3 or exts.shape[1:] != (4, 4):
            raise ValueError(f"{where}: intrinsics must be [N, 3, 3] and extrinsics [N, 4, 4], got "
                             f"{ks.shape} and {exts.shape}")
        idx = []
        for f in entry.extra["frames"]:
            m = _PO_FRAME.search(Path(f.paths[0]).stem)
            if m is None or int(m.group(1)) >= min(len(ks), len(exts)):
                raise ValueError(f"{entry.extra['split_file']}:{f.line_no}: frame {Path(f.paths[0]).name!r} has no "
                                 f"camera in {where} ({min(len(ks), len(exts))} frames)")
            idx.append(int(m.group(1)))
        return ks[idx], np.linalg.inv(exts[idx])


class DyDToFVideo(VideoBenchmark):
    """DyDToF (Sun et al., CVPR 2023; facebookresearch/DVSR) clips as the RollingDepth authors' split selects them.

    Split folder (default ``<root>/extracted_100frame_sub16``, the authors'
    ``data_split/dydtof/extracted_100frame_sub16``): 16 files ``<scene>^<shot>.csv`` (``apartment_big^ba_shot1.csv``,
    ``office^bo_shot1_fast.csv``, ...), 100 lines each after the header:
    ``ColorImage/shot1.XXXX.jpeg,DepthMap/shot1.XXXX.npy`` (frames 0050-0149). ``extracted_200frame_sub16`` holds
    the same 16 clips with 200 frames (0050-0249; ``split=``).

    Files: ``<root>/<scene>/<shot>/ColorImage/*.jpeg`` (8-bit RGB) and ``<root>/<scene>/<shot>/DepthMap/*.npy``
    (float depth, ``[H, W]`` or ``[H, W, 1]``, read as metres as stored).

    Valid = 1e-3 < d < 50: 50.0 is the renderer's no-hit value as third-party loaders of these files read it
    (``depth != 50``); the authors' own cap is not published. No cameras are read (the dataset's trajectory files
    are not named by the split), so no TAE.
    """

    name = "dydtof-video"
    split_file = "extracted_100frame_sub16"
    dataset_folder = "dydtof"
    split_source = "data_split/dydtof/extracted_100frame_sub16"
    num_samples = 16
    num_frames = 100
    min_depth = 1e-3
    max_depth = 50.0

    def decode_depth(self, frame):
        depth = np.squeeze(np.asarray(read_npy(self.source, frame.paths[1])))
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
            raise ValueError(f"{frame.paths[1]}: expected an [H, W] or [H, W, 1] numeric depth array, got "
                             f"{depth.dtype} {depth.shape}")
        return depth.astype(np.float32)


VIDEO_BENCHMARKS: dict[str, type[VideoBenchmark]] = {
    cls.name: cls for cls in (PointOdysseyVideo, ScanNetVideo, BonnVideo, DyDToFVideo)
}

__all__ = ["BonnVideo", "DyDToFVideo", "PointOdysseyVideo", "ScanNetVideo", "VIDEO_BENCHMARKS", "VideoBenchmark",
           "VideoSample"]
