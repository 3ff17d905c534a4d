"""What one labelled image is: its seed, the settings that define its result, and how its outputs are encoded.

* **Seed**: :func:`image_seed` derives each image's seed from the job's ``--seed`` and the SHA-256 of the image
  file's bytes, so a result depends on the content only, never on sharding, worker count or order; it equals
  ``marigold predict IMAGE --seed <image_seed(seed, sha256)>`` (bitwise at batch size 1, same device and threads).
* **Settings**: :func:`result_settings` is the dictionary of everything that defines the numbers (model, steps,
  ensemble, resolution, resampling, seed, dtype, ...), the checkpoint's defaults filled in; :func:`settings_hash`
  is its SHA-256, stored in every row and shard so a rerun never mixes results made with other settings.
* **Encodings** (:class:`OutputColumn`): one binary column per output, named like ``marigold predict``'s files
  (``depth``, ``normals``, ``albedo``, ..., ``depth_uncertainty``). Single-channel maps (depth, uncertainties of
  single-channel maps) are 16-bit grey PNGs of ``(v - lo) / (hi - lo) * 65535`` over the task's value range
  (``Task.value_range`` / ``Task.uncertainty_range``; the quantisation of predict's ``_depth.png``); 3-channel
  maps are float16 ``.npy`` files. :func:`decode_value` reads either back from the manifest's column description.
  Encoding is two steps: :meth:`OutputColumn.prepare` (cheap: quantise to uint16 / cast to float16, where the
  model runs) and :meth:`OutputColumn.finish` (the PNG compression, which at 12 MP costs seconds of CPU, so the
  engines run it off the model's process or thread).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..io.files import npy_bytes, png_bytes, quantize_uint16, read_png16
from ..io.images import MAX_PIXELS
from ..tasks import Task, ensembling_kwargs

#: version of the row layout and encodings below (part of the settings hash and of the manifest)
FORMAT_VERSION = 1
#: the encodings of an output column
ENCODINGS = ("png16", "npy")


def content_sha256(data: bytes) -> str:
    """The hex SHA-256 of an input file's bytes (the ``sha256`` column).

    >>> content_sha256(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def image_seed(seed: int, sha256: str) -> int:
    """The seed of one image: the first 8 bytes of ``SHA-256(f"marigold-label:{seed}:{sha256}")`` as a big-endian
    integer with the top bit cleared, so ``0 <= image_seed < 2**63``. ``sha256`` is the hex digest of the image
    file's bytes (:func:`content_sha256`). The image's result is ``marigold predict IMAGE --seed <this>``; two
    files with the same content get the same seed (and the same result).

    >>> image_seed(0, content_sha256(b""))
    5667259078283107301
    """
    digest = hashlib.sha256(f"marigold-label:{int(seed)}:{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


@dataclass(frozen=True)
class InferenceSettings:
    """The inference flags of a labelling job (``marigold label``'s, named as :meth:`Predictor.predict`'s
    arguments; ``None``: the checkpoint's default)."""

    num_inference_steps: int | None = None
    ensemble_size: int = 1
    processing_resolution: int | None = None
    match_input_resolution: bool = True
    resample: str = "bilinear"
    seed: int = 0
    batch_size: int = 1
    dtype: str = "float32"
    variant: str | None = None
    device: str | None = None
    reduction: str | None = None
    #: the task's ensembling method (depth: ``bfgs`` or ``least-squares``); ``None``: the task's default
    ensembling_method: str | None = None
    #: the job ran with ``--fast`` (its dtype, autocast and layout are resolved into the other fields)
    fast: bool = False
    noise: str | None = None
    task: str | None = None
    vae_tiling: bool = False
    vae_tile_size: int | None = None
    channels_last: bool = False
    #: a tiny decoder (``Predictor.from_pretrained``'s ``decoder``), or ``None``: the VAE's own
    decoder: str | None = None
    #: mixed precision (``Predictor.from_pretrained``'s ``autocast``), or ``None``
    autocast: str | None = None
    #: inputs with more pixels are refused (a failed input, not a result setting)
    max_pixels: int = MAX_PIXELS

    @property
    def with_uncertainty(self) -> bool:
        return self.ensemble_size > 1

    def predictor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Predictor.from_pretrained`."""
        return dict(dtype=self.dtype, device=self.device, variant=self.variant, task=self.task,
                    vae_tiling=self.vae_tiling or self.vae_tile_size is not None, vae_tile_size=self.vae_tile_size,
                    channels_last=self.channels_last, decoder=self.decoder, autocast=self.autocast)

    def predict_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Predictor.predict` (without the images and seeds)."""
        return dict(num_inference_steps=self.num_inference_steps, ensemble_size=self.ensemble_size,
                    processing_resolution=self.processing_resolution,
                    match_input_resolution=self.match_input_resolution, resample_method_input=self.resample,
                    resample_method_output=self.resample, batch_size=self.batch_size, noise=self.noise,
                    ensembling_kwargs=ensembling_kwargs(self.reduction, self.ensembling_method))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def result_settings(spec: Any, settings: InferenceSettings) -> dict[str, Any]:
    """Everything that defines a labelling job's numbers, as a JSON-able dictionary: the model (as named, and the
    SHA-256 of its ``model_index.json`` content), its task and targets, and the inference settings with the
    checkpoint's defaults filled in (``spec``: the checkpoint's
    :class:`~marigold_toolkit.checkpoints.model_index.MarigoldSpec`).

    Left out, because they do not change the result beyond float rounding or are not results at all: batch size,
    device, engine, workers, shard size, the pixel limit.
    """
    index = json.dumps(spec.model_index, sort_keys=True, separators=(",", ":"))
    task: Task = spec.task
    steps = settings.num_inference_steps
    res = settings.processing_resolution
    return {
        "format_version": FORMAT_VERSION,
        "model": str(spec.source),
        "model_index_sha256": hashlib.sha256(index.encode()).hexdigest(),
        "task": task.name,
        "targets": list(task.target_names),
        "num_inference_steps": steps if steps is not None else spec.default_denoising_steps,
        "ensemble_size": settings.ensemble_size,
        "processing_resolution": res if res is not None else spec.default_processing_resolution,
        "match_input_resolution": settings.match_input_resolution,
        "resample": settings.resample,
        "seed": settings.seed,
        "dtype": settings.dtype,
        "variant": settings.variant,
        "reduction": settings.reduction or task.default_reduction,
        "noise": settings.noise or spec.initial_noise,
        "vae_tiling": settings.vae_tiling or settings.vae_tile_size is not None,
        "vae_tile_size": settings.vae_tile_size,
        "channels_last": settings.channels_last,
        # only when set, so jobs written before tiny decoders existed keep their settings hash
        **({"decoder": settings.decoder} if settings.decoder else {}),
        **({"autocast": settings.autocast} if settings.autocast else {}),
        # only when not the task's default, for the same reason
        **({"ensembling_method": settings.ensembling_method}
           if settings.ensembling_method not in (None, *task.ensembling_methods[:1]) else {}),
    }


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of :func:`result_settings` (the ``settings`` column)."""
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class OutputColumn:
    """One binary output column: its name, encoding and what decoding needs.

    ``png16``: a 16-bit grey PNG of an ``H x W`` map quantised over ``value_range``
    (:func:`~marigold_toolkit.io.files.png16_bytes`); ``npy``: an ``.npy`` file in ``dtype`` (float16) of an
    ``H x W x C`` map.
    """

    name: str
    target: str
    uncertainty: bool
    encoding: str
    value_range: tuple[float, float] | None = None
    dtype: str | None = None

    def encode(self, array: np.ndarray) -> bytes:
        """The cell's bytes for a float map: :meth:`finish` of :meth:`prepare` (for ``png16``, equal to
        :func:`~marigold_toolkit.io.files.png16_bytes` over ``value_range``)."""
        return self.finish(self.prepare(array))

    def prepare(self, array: np.ndarray) -> np.ndarray:
        """The stored values: ``png16`` uint16 ``H x W`` (:func:`~marigold_toolkit.io.files.quantize_uint16`),
        ``npy`` the array in ``dtype``."""
        if self.encoding == "png16":
            if np.ndim(array) != 2:
                raise ValueError(f"{self.name}: a png16 column holds H x W maps, got shape {np.shape(array)}")
            return quantize_uint16(array, self.value_range)
        return np.ascontiguousarray(array, dtype=np.dtype(self.dtype))

    def finish(self, prepared: np.ndarray) -> bytes:
        """The cell's bytes from :meth:`prepare`'s values (``png16``: the PNG compression)."""
        if self.encoding == "png16":
            return png_bytes(prepared)
        return npy_bytes(prepared, prepared.dtype)

    def decode(self, data: bytes) -> np.ndarray:
        """The float32 map (``png16``: dequantised, to within ``(hi - lo) / 65535``) or the stored array."""
        return decode_value(self.describe(), data)

    def describe(self) -> dict[str, Any]:
        """The manifest's description of the column (what :func:`decode_value` takes)."""
        out: dict[str, Any] = {"encoding": self.encoding}
        if self.value_range is not None:
            out["value_range"] = [float(v) for v in self.value_range]
        if self.dtype is not None:
            out["dtype"] = self.dtype
        return out


def output_columns(task: Task, with_uncertainty: bool) -> list[OutputColumn]:
    """The output columns of a task, in order: per target ``<target>`` and, with uncertainty,
    ``<target>_uncertainty``; single-channel maps as 16-bit PNG over the task's range, others as float16 npy."""
    def column(target: str, uncertainty: bool) -> OutputColumn:
        name = f"{target}_uncertainty" if uncertainty else target
        channels = task.uncertainty_channels if uncertainty else task.channels
        lo, hi = task.uncertainty_range if uncertainty else task.value_range
        if channels == 1:
            return OutputColumn(name, target, uncertainty, "png16", value_range=(float(lo), float(hi)))
        return OutputColumn(name, target, uncertainty, "npy", dtype="float16")

    return [column(t, unc) for t in task.target_names for unc in ((False, True) if with_uncertainty else (False,))]


def prepare_output(columns: list[OutputColumn], output: Any) -> dict[str, np.ndarray]:
    """:meth:`OutputColumn.prepare` of every column of one
    :class:`~marigold_toolkit.pipeline.outputs.MarigoldOutput`."""
    return {col.name: col.prepare(output.uncertainty[col.target] if col.uncertainty else output.targets[col.target])
            for col in columns}


def finish_outputs(columns: list[OutputColumn], prepared: Mapping[str, np.ndarray]) -> dict[str, bytes]:
    """:meth:`OutputColumn.finish` of every column: the cells' bytes."""
    return {col.name: col.finish(prepared[col.name]) for col in columns}


def encode_output(columns: list[OutputColumn], output: Any) -> dict[str, bytes]:
    """The column bytes of one :class:`~marigold_toolkit.pipeline.outputs.MarigoldOutput`."""
    return finish_outputs(columns, prepare_output(columns, output))


def decode_value(column: Mapping[str, Any], data: bytes) -> np.ndarray:
    """Decode one cell of an output column given its manifest description (``manifest["columns"][name]``):
    float32 ``H x W`` from a ``png16`` cell, the stored ``H x W x C`` array from an ``npy`` cell.

    >>> col = OutputColumn("depth", "depth", False, "png16", value_range=(-1.0, 1.0))
    >>> decode_value(col.describe(), col.encode(np.array([[-1.0, 1.0]]))).tolist()
    [[-1.0, 1.0]]
    """
    if column["encoding"] == "png16":
        return read_png16(bytes(data), tuple(column["value_range"]))
    if column["encoding"] == "npy":
        return np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    raise ValueError(f"unknown encoding {column['encoding']!r}; expected one of {ENCODINGS}")


@dataclass
class LabelRow:
    """One labelled image. ``outputs``: column name -> encoded bytes (Parquet layout), or ``prepared`` values
    still to be finished (:meth:`OutputColumn.finish`); ``files``: the files written (files layout)."""

    key: str
    sha256: str
    width: int
    height: int
    seed: int
    outputs: dict[str, bytes] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    prepared: dict[str, np.ndarray] = field(default_factory=dict)

    def finish(self, columns: list[OutputColumn]) -> LabelRow:
        """Turn ``prepared`` into ``outputs`` (in place); returns the row."""
        if self.prepared:
            self.outputs = finish_outputs(columns, self.prepared)
            self.prepared = {}
        return self


@dataclass
class Failure:
    """An input that gave no result, with a one-line reason."""

    key: str
    reason: str
