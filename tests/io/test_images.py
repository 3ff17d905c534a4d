"""Reading images: the bad-input matrix (every failure is an ImageReadError with a one-line reason) and odd
but readable formats (every one becomes an HxWx3 array with the right values). All inputs are real files."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.io.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageReadError,
    find_images,
    is_image_path,
    load_image,
    open_image,
    pil_to_array,
)

ORIENTATION = 0x0112


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _read_error(path, **kwargs) -> str:
    """Both entry points fail the same way; returns the message after checking it is one non-empty line."""
    with pytest.raises(ImageReadError) as from_open:
        open_image(path, **kwargs)
    with pytest.raises(ImageReadError) as from_load:
        load_image(path, **kwargs)
    msg = str(from_open.value)
    assert msg == str(from_load.value)
    assert msg.strip() and msg == msg.strip()
    assert "\n" not in msg and "\r" not in msg
    return msg


def _png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is patched to claim ``width x height`` pixels (with a correct CRC)."""
    data = bytearray(_encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# ------------------------------------------------------------------------------------------------------------
# unreadable inputs


def test_missing_path(tmp_path):
    msg = _read_error(tmp_path / "nope.png")
    assert "no such file" in msg


def test_missing_parent_folder(tmp_path):
    assert "no such file" in _read_error(tmp_path / "missing-dir" / "x.jpg")


def test_folder_named_like_an_image(tmp_path):
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    assert "is a directory" in _read_error(folder)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    msg = _read_error(p)
    assert "empty" in msg and "0 bytes" in msg


@pytest.mark.parametrize("name", ["notes.jpg", "notes.png", "notes.webp"])
def test_text_file_with_image_extension(tmp_path, name):
    p = tmp_path / name
    p.write_text("this is not an image\nbut a text file\n")
    assert "not a recognised image" in _read_error(p)


def test_random_bytes_with_image_extension(tmp_path):
    p = tmp_path / "noise.jpg"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not a recognised image" in _read_error(p)


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_image(tmp_path, fmt, suffix, fraction):
    full = _encode(Image.fromarray(_noise(64, 64)), fmt)
    p = tmp_path / f"cut{suffix}"
    p.write_bytes(full)
    assert load_image(p).shape == (64, 64, 3)  # the intact file is fine
    p.write_bytes(full[: int(len(full) * fraction)])
    msg = _read_error(p)
    assert "truncated" in msg


def test_corrupted_png_data(tmp_path):
    data = bytearray(_encode(Image.fromarray(_noise(64, 64)), "PNG"))
    data[100] ^= 0xFF  # inside the IDAT stream
    p = tmp_path / "bitflip.png"
    p.write_bytes(bytes(data))
    assert "corrupt" in _read_error(p)


def test_absurd_png_dimensions_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_claiming_size(100_000, 100_000))
    assert p.stat().st_size < 100
    pil_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(p) as probe:  # the header really claims the size (and PIL accepts the file)
            assert probe.size == (100_000, 100_000)
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    t0 = time.perf_counter()
    msg = _read_error(p)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0  # decoding 10 GP (30 GB) would take far longer or run out of memory
    assert "100000x100000" in msg and "limit" in msg
    assert Image.MAX_IMAGE_PIXELS == pil_limit  # PIL's own global limit is restored afterwards


def test_absurd_bmp_dimensions_refused(tmp_path):
    data = bytearray(_encode(Image.new("RGB", (2, 2)), "BMP"))
    data[18:26] = struct.pack("<ii", 50_000, 50_000)
    p = tmp_path / "huge.bmp"
    p.write_bytes(bytes(data))
    t0 = time.perf_counter()
    msg = _read_error(p)
    assert time.perf_counter() - t0 < 1.0
    assert "limit" in msg


def test_max_pixels_boundary(tmp_path):
    p = tmp_path / "ten.png"
    Image.fromarray(_noise(10, 10)).save(p)
    assert load_image(p, max_pixels=100).shape == (10, 10, 3)
    msg = _read_error(p, max_pixels=99)
    assert "10x10" in msg and "limit" in msg
    assert MAX_PIXELS >= 12_000_000  # an ordinary 12 MP photo passes the default


# ------------------------------------------------------------------------------------------------------------
# readable odd formats


def _check_rgb(arr: np.ndarray, h: int, w: int, dtype=np.uint8) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.shape == (h, w, 3)
    assert arr.dtype == dtype


def test_plain_rgb_png_exact(tmp_path):
    src = _noise(37, 53)
    p = tmp_path / "rgb.png"
    Image.fromarray(src).save(p)
    arr = load_image(p)
    _check_rgb(arr, 37, 53)
    np.testing.assert_array_equal(arr, src)


def test_open_image_returns_loaded_pil_image(tmp_path):
    p = tmp_path / "rgb.png"
    Image.fromarray(_noise(5, 7)).save(p)
    img = open_image(p)
    assert isinstance(img, Image.Image)
    assert img.size == (7, 5)
    p.unlink()  # fully decoded: usable after the file is gone
    assert np.asarray(img).shape == (5, 7, 3)


def test_grayscale_replicated_to_three_channels(tmp_path):
    gray = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    p = tmp_path / "gray.png"
    Image.fromarray(gray, mode="L").save(p)
    assert Image.open(p).mode == "L"
    arr = load_image(p)
    _check_rgb(arr, 12, 20)
    for c in range(3):
        np.testing.assert_array_equal(arr[..., c], gray)


def test_grayscale_alpha_png(tmp_path):
    la = np.zeros((4, 6, 2), dtype=np.uint8)
    la[..., 0] = np.arange(24).reshape(4, 6) * 10
    la[..., 1] = np.arange(24).reshape(4, 6)  # varied alpha, including 0
    p = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(p)
    arr = load_image(p)
    _check_rgb(arr, 4, 6)
    for c in range(3):
        np.testing.assert_array_equal(arr[..., c], la[..., 0])


def test_bilevel_png(tmp_path):
    bits = np.zeros((8, 8), dtype=bool)
    bits[::2, 1::2] = True
    p = tmp_path / "bits.png"
    Image.fromarray(bits).convert("1").save(p)
    arr = load_image(p)
    _check_rgb(arr, 8, 8)
    np.testing.assert_array_equal(arr[..., 0], np.where(bits, 255, 0))


def test_16bit_grayscale_png_keeps_full_precision(tmp_path):
    values = np.array([[0, 1, 255, 256], [1000, 32768, 65534, 65535]], dtype=np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(values).save(p)
    with Image.open(p) as raw:
        assert raw.mode.startswith("I")  # really a 16-bit PNG
    arr = load_image(p)
    _check_rgb(arr, 2, 4, np.uint16)
    for c in range(3):
        np.testing.assert_array_equal(arr[..., c], values)


def test_dark_16bit_png_stays_16bit(tmp_path):
    values = np.array([[0, 3, 100, 255]], dtype=np.uint16)  # all <= 255, still a 16-bit file
    p = tmp_path / "dark16.png"
    Image.fromarray(values).save(p)
    arr = load_image(p)
    _check_rgb(arr, 1, 4, np.uint16)
    np.testing.assert_array_equal(arr[..., 1], values)


def test_16bit_tiff(tmp_path):
    values = (np.arange(6 * 5, dtype=np.uint32).reshape(6, 5) * 2000).astype(np.uint16)
    p = tmp_path / "deep.tif"
    Image.fromarray(values).save(p)
    arr = load_image(p)
    _check_rgb(arr, 6, 5, np.uint16)
    np.testing.assert_array_equal(arr[..., 2], values)


@pytest.mark.parametrize("values", [[[0, 100], [200, 255]], [[0, 300], [40000, 65535]]])
def test_16bit_pgm(tmp_path, values):
    values = np.array(values, dtype=np.uint16)
    p = tmp_path / "deep.pgm"
    p.write_bytes(b"P5\n2 2\n65535\n" + values.astype(">u2").tobytes())
    arr = load_image(p)
    _check_rgb(arr, 2, 2, np.uint16)  # a dark 16-bit file must not be read as 8-bit (257x too bright)
    np.testing.assert_array_equal(arr[..., 0], values)


def test_8bit_ppm(tmp_path):
    src = _noise(3, 4, seed=5)
    p = tmp_path / "x.ppm"
    p.write_bytes(b"P6\n4 3\n255\n" + src.tobytes())
    np.testing.assert_array_equal(load_image(p), src)


def test_palette_png(tmp_path):
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (12, 34, 56)]
    idx = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [0, 0, 3, 3]], dtype=np.uint8)
    img = Image.fromarray(idx, mode="P")
    img.putpalette([v for rgb in palette for v in rgb] + [0] * (768 - 12))
    p = tmp_path / "pal.png"
    img.save(p)
    assert Image.open(p).mode == "P"
    arr = load_image(p)
    _check_rgb(arr, 3, 4)
    np.testing.assert_array_equal(arr, np.array(palette, dtype=np.uint8)[idx])


def test_palette_png_with_transparency(tmp_path):
    palette = [(9, 8, 7), (200, 100, 50)]
    idx = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    img = Image.fromarray(idx, mode="P")
    img.putpalette([v for rgb in palette for v in rgb] + [0] * (768 - 6))
    p = tmp_path / "pal_t.png"
    img.save(p, transparency=0)
    assert "transparency" in Image.open(p).info
    arr = load_image(p)
    _check_rgb(arr, 2, 2)
    np.testing.assert_array_equal(arr, np.array(palette, dtype=np.uint8)[idx])


def test_rgba_alpha_dropped_rgb_kept(tmp_path):
    rgba = np.zeros((5, 6, 4), dtype=np.uint8)
    rgba[..., :3] = _noise(5, 6, seed=3)
    rgba[..., 3] = np.arange(30).reshape(5, 6) * 8  # includes fully transparent pixels
    p = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(p)
    arr = load_image(p)
    _check_rgb(arr, 5, 6)
    np.testing.assert_array_equal(arr, rgba[..., :3])


def test_cmyk_jpeg_colours(tmp_path):
    cmyk_colours = {
        "cyan": ((255, 0, 0, 0), (0, 255, 255)),
        "magenta": ((0, 255, 0, 0), (255, 0, 255)),
        "yellow": ((0, 0, 255, 0), (255, 255, 0)),
        "black": ((0, 0, 0, 255), (0, 0, 0)),
        "white": ((0, 0, 0, 0), (255, 255, 255)),
    }
    img = Image.new("CMYK", (16 * len(cmyk_colours), 16))
    for i, (cmyk, _) in enumerate(cmyk_colours.values()):
        img.paste(cmyk, (16 * i, 0, 16 * (i + 1), 16))
    p = tmp_path / "cmyk.jpg"
    img.save(p, quality=95)
    assert Image.open(p).mode == "CMYK"
    arr = load_image(p)
    _check_rgb(arr, 16, 16 * len(cmyk_colours))
    for i, (name, (_, rgb)) in enumerate(cmyk_colours.items()):
        block = arr[4:12, 16 * i + 4 : 16 * i + 12].reshape(-1, 3).astype(int)
        assert np.abs(block - np.array(rgb)).max() <= 12, (name, block.mean(axis=0))


def _quadrant_image() -> np.ndarray:
    """32 rows x 64 columns, four flat quadrants: TL red, TR green, BL blue, BR white."""
    a = np.zeros((32, 64, 3), dtype=np.uint8)
    a[:16, :32] = (255, 0, 0)
    a[:16, 32:] = (0, 255, 0)
    a[16:, :32] = (0, 0, 255)
    a[16:, 32:] = (255, 255, 255)
    return a


RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


@pytest.mark.parametrize(
    "orientation, expected_shape, expected, corners",
    [
        # 6: stored image must be turned 90 deg clockwise for display -> its top-left goes to the top-right
        (6, (64, 32), lambda a: np.rot90(a, k=-1), {"tl": BLUE, "tr": RED, "bl": WHITE, "br": GREEN}),
        # 8: turned 90 deg counter-clockwise -> its top-left goes to the bottom-left
        (8, (64, 32), lambda a: np.rot90(a, k=1), {"tl": GREEN, "tr": WHITE, "bl": RED, "br": BLUE}),
        (3, (32, 64), lambda a: a[::-1, ::-1], {"tl": WHITE, "tr": BLUE, "bl": GREEN, "br": RED}),
        (1, (32, 64), lambda a: a, {"tl": RED, "tr": GREEN, "bl": BLUE, "br": WHITE}),
    ],
)
def test_exif_rotated_jpeg(tmp_path, orientation, expected_shape, expected, corners):
    src = _quadrant_image()
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    p = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(src).save(p, exif=exif, quality=95)
    with Image.open(p) as raw:
        assert raw.size == (64, 32) and raw.getexif().get(ORIENTATION) == orientation

    arr = load_image(p)
    _check_rgb(arr, *expected_shape)
    assert np.abs(arr.astype(int) - expected(src).astype(int)).mean() < 4
    h, w = expected_shape
    probes = {"tl": arr[2, 2], "tr": arr[2, w - 3], "bl": arr[h - 3, 2], "br": arr[h - 3, w - 3]}
    for corner, colour in corners.items():
        assert np.abs(probes[corner].astype(int) - np.array(colour)).max() <= 16, (corner, probes[corner])
    # the orientation was applied, so it is no longer pending on the returned image
    assert open_image(p).getexif().get(ORIENTATION, 1) == 1


def test_exif_rotated_png(tmp_path):
    src = _noise(6, 10, seed=9)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    p = tmp_path / "rot.png"
    Image.fromarray(src).save(p, exif=exif)
    arr = load_image(p)
    np.testing.assert_array_equal(arr, np.rot90(src, k=-1))  # lossless: exact


def test_animated_gif_first_frame(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (8, 6), c) for c in colours]
    frames[0].paste((250, 250, 0), (0, 0, 4, 3))  # a distinctive corner in frame 0 only
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(p) as raw:
        assert raw.n_frames == 3
    arr = load_image(p)
    _check_rgb(arr, 6, 8)
    np.testing.assert_array_equal(arr[0, 0], (250, 250, 0))
    np.testing.assert_array_equal(arr[5, 7], (255, 0, 0))


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("WEBP", ".webp")])
def test_animated_png_and_webp_first_frame(tmp_path, fmt, suffix):
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    frames = [Image.new("RGB", (16, 16), c) for c in colours]
    p = tmp_path / f"anim{suffix}"
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, **extra)
    with Image.open(p) as raw:
        assert getattr(raw, "n_frames", 1) == 3
    arr = load_image(p)
    _check_rgb(arr, 16, 16)
    assert np.abs(arr.reshape(-1, 3).astype(int) - np.array(colours[0])).max() <= 2


def test_webp_lossless_exact(tmp_path):
    src = _noise(20, 30, seed=2)
    p = tmp_path / "x.webp"
    Image.fromarray(src).save(p, lossless=True)
    arr = load_image(p)
    _check_rgb(arr, 20, 30)
    np.testing.assert_array_equal(arr, src)


def test_webp_lossy_approximate(tmp_path):
    src = np.zeros((32, 32, 3), dtype=np.uint8)
    src[:, :16] = (220, 30, 40)
    src[:, 16:] = (20, 60, 200)
    p = tmp_path / "lossy.webp"
    Image.fromarray(src).save(p, quality=90)
    arr = load_image(p)
    _check_rgb(arr, 32, 32)
    assert np.abs(arr[8:24, 2:12].astype(int) - (220, 30, 40)).max() <= 12
    assert np.abs(arr[8:24, 20:30].astype(int) - (20, 60, 200)).max() <= 12


@pytest.mark.parametrize(
    "suffix, kwargs", [(".tif", {}), (".tiff", {"compression": "tiff_lzw"}), (".bmp", {})]
)
def test_tiff_and_bmp_exact(tmp_path, suffix, kwargs):
    src = _noise(9, 11, seed=4)
    p = tmp_path / f"x{suffix}"
    Image.fromarray(src).save(p, **kwargs)
    arr = load_image(p)
    _check_rgb(arr, 9, 11)
    np.testing.assert_array_equal(arr, src)


def test_float_tiff(tmp_path):
    values = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    p = tmp_path / "f.tif"
    Image.fromarray(values, mode="F").save(p)
    arr = load_image(p)
    _check_rgb(arr, 2, 2, np.float32)
    np.testing.assert_array_equal(arr[..., 1], values)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_tiff_with_nan_or_inf_refused(tmp_path, bad):
    values = np.array([[0.0, 0.25], [bad, 1.0]], dtype=np.float32)
    p = tmp_path / "bad.tif"
    Image.fromarray(values, mode="F").save(p)
    with pytest.raises(ImageReadError) as err:
        load_image(p)
    msg = str(err.value)
    assert "NaN or infinite" in msg and "\n" not in msg


def test_uppercase_extension(tmp_path):
    src = _noise(4, 4)
    p = tmp_path / "PHOTO.PNG"
    Image.fromarray(src).save(p, format="PNG")
    np.testing.assert_array_equal(load_image(p), src)


def test_unicode_and_spaces_in_path(tmp_path):
    folder = tmp_path / "ünï cödé"
    folder.mkdir()
    src = _noise(7, 9, seed=8)
    p = folder / "phö to.png"
    Image.fromarray(src).save(p)
    np.testing.assert_array_equal(load_image(p), src)
    np.testing.assert_array_equal(load_image(str(p)), src)
    images, errors = find_images([folder])
    assert images == [p] and errors == []
    assert "no such file" in _read_error(folder / "phö to (2).png")


def test_image_with_wrong_extension_still_reads(tmp_path):
    src = _noise(5, 5)
    p = tmp_path / "actually_png.jpg"
    Image.fromarray(src).save(p, format="PNG")
    np.testing.assert_array_equal(load_image(p), src)  # content decides, not the name


# ------------------------------------------------------------------------------------------------------------
# pil_to_array on in-memory images


def test_pil_to_array_modes():
    rgb = _noise(3, 4)
    np.testing.assert_array_equal(pil_to_array(Image.fromarray(rgb)), rgb)

    rgba = np.dstack([rgb, np.zeros((3, 4), np.uint8)])
    np.testing.assert_array_equal(pil_to_array(Image.fromarray(rgba, mode="RGBA")), rgb)

    big = np.array([[0, 70000, 300]], dtype=np.int32)  # mode I beyond 8 bits: uint16, clipped
    out = pil_to_array(Image.fromarray(big, mode="I"))
    assert out.dtype == np.uint16 and out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out[..., 0], [[0, 65535, 300]])

    small = np.array([[-5, 7, 255]], dtype=np.int32)
    out = pil_to_array(Image.fromarray(small, mode="I"))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 2], [[0, 7, 255]])

    be = Image.frombytes("I;16B", (3, 1), np.array([1, 300, 65535], dtype=">u2").tobytes())
    out = pil_to_array(be)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[..., 0], [[1, 300, 65535]])


def test_pil_to_array_float_modes():
    inside = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    out = pil_to_array(Image.fromarray(inside, mode="F"))
    assert out.dtype == np.float32 and out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out[..., 0], inside)

    outside = np.array([[-2.0, 0.0, 2.0]], dtype=np.float32)  # rescaled to [0, 1]
    out = pil_to_array(Image.fromarray(outside, mode="F"))
    np.testing.assert_allclose(out[..., 0], [[0.0, 0.5, 1.0]])

    bad = np.array([[0.0, np.nan]], dtype=np.float32)
    with pytest.raises(ImageReadError) as err:
        pil_to_array(Image.fromarray(bad, mode="F"))
    assert "NaN" in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------------------
# find_images


def _touch_image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".webp": "WEBP", ".tiff": "TIFF", ".png": "PNG"}[path.suffix.lower()]
    Image.fromarray(_noise(4, 4, seed)).save(path, format=fmt)
    return path


def test_is_image_path():
    for ext in IMAGE_EXTENSIONS:
        assert is_image_path(f"a/b{ext}") and is_image_path(f"a/b{ext.upper()}")
    for name in ("notes.txt", "x.npy", "README", "archive.png.zip", "data.json"):
        assert not is_image_path(name)


def test_find_images_recursive_sorted_ignores_non_images(tmp_path):
    root = tmp_path / "in"
    expected = [
        _touch_image(root / "A.jpg"),
        _touch_image(root / "b.png"),
        _touch_image(root / "sub" / "c.webp"),
        _touch_image(root / "sub" / "deeper" / "d.TIFF"),
        _touch_image(root / "z.png"),
    ]
    (root / "notes.txt").write_text("hi")
    (root / "sub" / "depth.npy").write_bytes(b"\x93NUMPY")
    (root / "sub" / "README").write_text("x")
    (root / "sub" / "folder.png").mkdir()  # a directory named like an image inside a folder: skipped
    images, errors = find_images([root])
    assert errors == []
    assert images == expected
    assert all(isinstance(p, Path) for p in images)
    # str input gives the same answer
    assert find_images([str(root)]) == (expected, [])


def test_find_images_explicit_missing_path_reported(tmp_path):
    good = _touch_image(tmp_path / "good.png")
    missing = tmp_path / "missing.jpg"
    images, errors = find_images([missing, good])
    assert images == [good]
    assert errors == [(missing, "no such file or directory")]


def test_find_images_folder_without_images(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    only_text = tmp_path / "texts"
    only_text.mkdir()
    (only_text / "a.txt").write_text("a")
    images, errors = find_images([empty, only_text])
    assert images == []
    assert errors == [(empty, "folder contains no images"), (only_text, "folder contains no images")]


def test_find_images_empty_folder_named_like_an_image(tmp_path):
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    images, errors = find_images([folder])
    assert images == []
    assert len(errors) == 1 and errors[0][0] == folder and "is a directory" in errors[0][1]


def test_find_images_folder_named_like_an_image_with_images_inside(tmp_path):
    folder = tmp_path / "x.jpg"
    inner = _touch_image(folder / "inner.png")
    assert find_images([folder]) == ([inner], [])


def test_find_images_duplicates_dropped(tmp_path):
    a = _touch_image(tmp_path / "imgs" / "a.png")
    b = _touch_image(tmp_path / "imgs" / "b.png", seed=1)
    other = _touch_image(tmp_path / "other.png", seed=2)
    same_a = tmp_path / "imgs" / ".." / "imgs" / "a.png"
    images, errors = find_images([a, str(a), same_a, tmp_path / "imgs", other, other])
    assert errors == []
    assert images == [a, b, other]  # first occurrence kept, order preserved


def test_find_images_explicit_non_image_file_is_kept_and_fails_later(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    images, errors = find_images([notes])
    assert images == [notes] and errors == []
    assert "not a recognised image" in _read_error(notes)


def test_find_images_empty_input():
    assert find_images([]) == ([], [])


def test_bytes_source_reads_like_the_file(tmp_path):
    arr = _noise(20, 30)
    data = _encode(Image.fromarray(arr), "PNG")
    np.testing.assert_array_equal(load_image(data), arr)
    np.testing.assert_array_equal(load_image(bytearray(data)), arr)
    p = tmp_path / "x.png"
    p.write_bytes(data)
    np.testing.assert_array_equal(load_image(data), load_image(p))


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"hello, not an image", "not a recognised image"),
    (_png_claiming_size(100_000, 100_000), "limit"),
])
def test_bad_bytes_are_one_line_errors(data, reason):
    with pytest.raises(ImageReadError, match=reason) as err:
        load_image(data)
    assert "\n" not in str(err.value)


def test_truncated_bytes():
    full = _encode(Image.fromarray(_noise(64, 64)), "JPEG")
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(full[: len(full) // 2])


def test_concurrent_decoding_keeps_pillows_limit():
    from concurrent.futures import ThreadPoolExecutor

    limit = Image.MAX_IMAGE_PIXELS
    data = _encode(Image.fromarray(_noise(64, 64)), "PNG")
    bomb = _png_claiming_size(100_000, 100_000)

    def one(k):
        try:
            return load_image(bomb if k % 2 else data).shape
        except ImageReadError:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(64)))
    assert results.count("refused") == 32 and results.count((64, 64, 3)) == 32
    assert Image.MAX_IMAGE_PIXELS == limit
