"""Robust image reading for batch jobs.

Every unreadable input raises :class:`ImageReadError` with a one-line reason; every readable odd format is
converted to RGB: grayscale, 16-bit, palette, RGBA (alpha dropped), CMYK, EXIF-rotated JPEG, animated images
(first frame), WebP/TIFF/BMP.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm", ".jfif",
)
#: Inputs with more pixels than this are refused (a 4000x3000 photo has 12 MP).
MAX_PIXELS = 100_000_000


#: Pillow's pixel limit and the warning filters are process-wide: decoding holds this lock while it changes them
#: (a server decodes uploads in several threads)
_PIL_GLOBALS = threading.Lock()


class ImageReadError(Exception):
    """An input cannot be used as an image. ``str(err)`` is a one-line reason."""


class ImageTooLargeError(ImageReadError):
    """The image's header claims more pixels than the limit (nothing was decoded)."""


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def pil_to_array(img: Image.Image) -> np.ndarray:
    """A PIL image (already oriented) -> ``HxWx3`` uint8, or uint16 for 16-bit sources, or float32 in [0, 1]."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.uint16)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "I":
        arr = np.asarray(img, dtype=np.int64)
        hi = 65535 if arr.max(initial=0) > 255 else 255
        arr = np.clip(arr, 0, hi).astype(np.uint16 if hi > 255 else np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())  # NaN propagates (np.nanmin would hide it)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ImageReadError("floating-point image holds NaN or infinite values")
        if lo < 0 or hi > 1:
            arr = (arr - lo) / max(hi - lo, 1e-12)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    return np.asarray(img.convert("RGB"))


def open_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``source`` (a path, or the bytes of an image file: an upload, a Parquet cell) as a fully decoded,
    EXIF-oriented PIL image (first frame of animations). The pixel limit is checked on the header, before
    anything is decoded (decompression bombs).

    Raises:
        ImageReadError: missing, a directory, empty, not an image, truncated/corrupt, or over ``max_pixels``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageReadError("empty file (0 bytes)")
        opened = io.BytesIO(bytes(source))
    else:
        p = Path(source)
        if not p.exists():
            raise ImageReadError("no such file")
        if p.is_dir():
            raise ImageReadError("is a directory, not an image file")
        if p.stat().st_size == 0:
            raise ImageReadError("empty file (0 bytes)")
        opened = p
    with _PIL_GLOBALS:
        return _decode(opened, max_pixels)


def _decode(opened: io.BytesIO | Path, max_pixels: int) -> Image.Image:
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # we apply our own limit before decoding
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(opened)
            w, h = img.size
            if w * h > max_pixels or w <= 0 or h <= 0:
                raise ImageTooLargeError(f"image is {w}x{h} = {w * h / 1e6:.0f} MP, over the limit of {max_pixels / 1e6:.0f} MP")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img.load()
            if img.mode == "I" and img.format == "PPM":
                # Pillow reads every >8-bit PGM as mode I on a 0..65535 scale: keep it 16-bit even when dark.
                img = img.convert("I;16")
            img = ImageOps.exif_transpose(img) or img
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError("not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(f"corrupt or truncated image ({msg})") from None
    except Image.DecompressionBombError as exc:  # pragma: no cover - limit disabled above
        raise ImageReadError(str(exc)) from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    return img


def load_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read ``source`` (a path or an image file's bytes) into an ``HxWx3`` array (uint8, uint16 for 16-bit
    files, or float32 in [0, 1])."""
    img = open_image(source, max_pixels)
    try:
        return pil_to_array(img)
    except ImageReadError:
        raise
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot convert image mode {img.mode} ({exc})") from None


def find_images(inputs: list[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and folders (recursively, sorted) into image files.

    Returns ``(images, errors)``: ``errors`` lists inputs that cannot be used with a reason. Non-image and hidden
    files (e.g. a killed run's ``.marigold-tmp-*``) found inside folders are ignored silently; an explicit file
    argument is always returned (and fails later if it cannot be read). Duplicates are dropped.
    """
    found: list[Path] = []
    errors: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append(p)

    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            hits = sorted(
                (q for q in p.rglob("*") if q.is_file() and is_image_path(q) and not q.name.startswith(".")),
                key=lambda q: str(q).lower(),
            )
            if not hits:
                reason = "is a directory, not an image file" if is_image_path(p) else "folder contains no images"
                errors.append((p, reason))
            for q in hits:
                add(q)
        elif p.exists():
            add(p)
        else:
            errors.append((p, "no such file or directory"))
    return found, errors
