"""Writers for tiny training-set fixtures in the published on-disk formats."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_rgb(path: Path, rgb: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB").save(path, format=fmt)


def write_png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(values, dtype=np.uint16))
    assert img.mode == "I;16"
    img.save(path)


def write_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)


def write_exr(path: Path, arr: np.ndarray) -> None:
    import OpenEXR

    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": np.ascontiguousarray(arr, dtype=np.float32)}) as f:
        f.write(str(path))


def write_split(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))  # the authors' files have no trailing newline
    return path


def make_tar(folder: Path, tar_path: Path, dot_prefix: bool = True) -> Path:
    """Archive the files under ``folder`` as ``./<rel>`` (the authors' depth tars) or ``<rel>``."""
    with tarfile.open(tar_path, "w") as tar:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                rel = p.relative_to(folder).as_posix()
                tar.add(p, arcname=("./" + rel) if dot_prefix else rel)
    return tar_path


def random_rgb(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def random_normals(rng: np.random.Generator, h: int, w: int, dtype=np.float32) -> np.ndarray:
    """Unit vectors facing the camera (z > 0) in the X right, Y up, Z towards viewer frame."""
    n = rng.normal(size=(h, w, 3))
    n[..., 2] = np.abs(n[..., 2]) + 0.5
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    return n.astype(dtype)


# ----------------------------------------------------------------------------------------------------------
# per-dataset layouts


HS_SCENE = "ai_001_001"


def hypersim_depth(root: Path, rng: np.random.Generator, n: int = 2, hw=(12, 16), split_name=None) -> dict:
    """``<scene>/rgb_cam_00_frNNNN.png`` + ``<scene>/depth_plane_cam_00_frNNNN.png`` (uint16 mm, 0 invalid)."""
    lines, data = [], {}
    for i in range(n):
        rgb = random_rgb(rng, *hw)
        mm = rng.integers(500, 20000, size=hw).astype(np.uint16)
        mm[0, 0] = 0  # render_entity_id == -1
        mm[0, 1] = 65535  # 65.535 m, beyond the 65 m range
        mm[1, 0] = 65000  # 65.0 m: max is strict
        rgb_rel = f"{HS_SCENE}/rgb_cam_00_fr{i:04d}.png"
        depth_rel = f"{HS_SCENE}/depth_plane_cam_00_fr{i:04d}.png"
        write_rgb(root / rgb_rel, rgb)
        write_png16(root / depth_rel, mm)
        lines.append(f"{rgb_rel} {depth_rel}")
        data[i] = {"rgb": rgb, "mm": mm, "rgb_rel": rgb_rel, "depth_rel": depth_rel}
    write_split(root / (split_name or "filename_list_train_filtered.txt"), lines)
    return data


VK_PREFIX = "Scene02/clone/frames"


def vkitti_depth(root: Path, rng: np.random.Generator, n: int = 2, hw=(10, 20)) -> dict:
    """``rgb/Scene02/clone/frames/rgb/Camera_0/rgb_NNNNN.jpg`` + ``depth/.../depth_NNNNN.png`` (uint16 cm)."""
    lines, data = [], {}
    h, w = hw
    for i in range(n):
        rgb = random_rgb(rng, h, w)
        cm = (np.arange(h)[:, None] * 100 + np.arange(w)[None, :] + 1 + 1000 * i).astype(np.uint16)
        cm[-1, w // 2] = 65535  # saturated far range (655.35 m), beyond 80 m
        cm[-2, w // 2] = 8000  # exactly 80 m: invalid (strict)
        rgb_rel = f"rgb/{VK_PREFIX}/rgb/Camera_0/rgb_{i:05d}.jpg"
        depth_rel = f"depth/{VK_PREFIX}/depth/Camera_0/depth_{i:05d}.png"
        write_rgb(root / rgb_rel, rgb, fmt="JPEG")
        write_png16(root / depth_rel, cm)
        lines.append(f"{rgb_rel} {depth_rel}")
        data[i] = {"rgb": rgb, "cm": cm}
    lines.append(f"rgb/{VK_PREFIX}/rgb/Camera_0/rgb_{n:05d}.jpg None")  # dropped, as the authors
    write_split(root / "vkitti_train.txt", lines)
    return data


def hypersim_normals(root: Path, rng: np.random.Generator, n: int = 2, hw=(16, 16)) -> dict:
    """``train/<scene>/rgb_cam_00_frNNNN.png`` + ``train/<scene>/normal_cam_cam_00_frNNNN.npy`` (float64)."""
    lines, data = [], {}
    for i in range(n):
        rgb = random_rgb(rng, *hw)
        normals = random_normals(rng, *hw, dtype=np.float64)
        rgb_rel = f"train/{HS_SCENE}/rgb_cam_00_fr{i:04d}.png"
        n_rel = f"train/{HS_SCENE}/normal_cam_cam_00_fr{i:04d}.npy"
        write_rgb(root / rgb_rel, rgb)
        write_npy(root / n_rel, normals)
        lines.append(f"{rgb_rel} {n_rel}")
        data[i] = {"rgb": rgb, "normals": normals}
    write_split(root / "hypersim_filtered_all.txt", lines)
    return data


IV_SCENE = "L3D124S21ENDIMIPXNIUI5L7ELUF3P3XY888"


def interiorverse_normals(root: Path, rng: np.random.Generator, n: int = 2, hw=(12, 16)) -> dict:
    """``<root>/scenes_85/<scene>/NNN_img.png`` + ``NNN_normal.npy``; the split file next to ``scenes_85``
    (where the authors' preprocessing writes it). Returns the data root ``scenes_85``."""
    data_root = root / "scenes_85"
    lines, data = [], {}
    for i in range(n):
        rgb = random_rgb(rng, *hw)
        normals = random_normals(rng, *hw)
        write_rgb(data_root / IV_SCENE / f"{i:03d}_img.png", rgb)
        write_npy(data_root / IV_SCENE / f"{i:03d}_normal.npy", normals)
        lines.append(f"{IV_SCENE}/{i:03d}_img.png {IV_SCENE}/{i:03d}_normal.npy")
        data[i] = {"rgb": rgb, "normals": normals}
    write_split(root / "interiorverse_filtered_all.txt", lines)
    return {"root": data_root, **data}


def sintel_normals(root: Path, rng: np.random.Generator, n: int = 1, hw=(8, 20)) -> dict:
    """``<scene>/frame_NNNN_img.png`` + ``frame_NNNN_normal.npy`` with zero (sky) vectors in the top rows."""
    lines, data = [], {}
    for i in range(1, n + 1):
        rgb = random_rgb(rng, *hw)
        normals = random_normals(rng, *hw)
        normals[:2] = 0.0  # sky
        rgb_rel, n_rel = f"alley_2/frame_{i:04d}_img.png", f"alley_2/frame_{i:04d}_normal.npy"
        write_rgb(root / rgb_rel, rgb)
        write_npy(root / n_rel, normals)
        lines.append(f"{rgb_rel} {n_rel}")
        data[i - 1] = {"rgb": rgb, "normals": normals}
    write_split(root / "sintel_filtered.txt", lines)
    return data


def interiorverse_iid(root: Path, rng: np.random.Generator, n: int = 1, hw=(8, 10)) -> dict:
    """``scenes_85/<scene>/NNN_{im,albedo,material,mask}.exr`` (linear HDR) + the 4-column split file."""
    lines, data = [], {}
    for i in range(n):
        arrays = {
            "im": rng.uniform(0.0, 1.6, size=(*hw, 3)).astype(np.float32),  # HDR, > 1 is clipped
            "albedo": rng.uniform(0.0, 1.0, size=(*hw, 3)).astype(np.float32),
            "material": rng.uniform(0.0, 1.0, size=(*hw, 3)).astype(np.float32),
            "mask": np.ones((*hw, 3), dtype=np.float32),
        }
        arrays["mask"][0, :3] = 0.0  # invalid pixels
        rels = {k: f"scenes_85/{IV_SCENE}/{i:03d}_{k}.exr" for k in arrays}
        for k, arr in arrays.items():
            write_exr(root / rels[k], arr)
        lines.append(" ".join(rels[k] for k in ("im", "albedo", "material", "mask")))
        data[i] = arrays
    write_split(root / "interiorverse_train_scenes_85.txt", lines)
    return data


def hypersim_iid(root: Path, rng: np.random.Generator, n: int = 1, hw=(8, 12)) -> dict:
    """``train/<scene>/{rgb.png, albedo.npy, shading.npy, residual.npy, shading_stats.json}`` + 5-column split."""
    lines, data = [], {}
    for i in range(n):
        rgb = random_rgb(rng, *hw)
        albedo = rng.uniform(0.0, 1.0, size=(*hw, 3))
        albedo[0, 0] = 0.0  # black albedo: invalid
        shading = rng.gamma(2.0, 1.5, size=(*hw, 3))
        residual = rng.gamma(1.0, 0.3, size=(*hw, 3))
        base = f"train/{HS_SCENE}"
        rels = {
            "rgb": f"{base}/rgb_cam_00_fr{i:04d}.png",
            "albedo": f"{base}/albedo_cam_00_fr{i:04d}.npy",
            "shading": f"{base}/shading_cam_00_fr{i:04d}.npy",
            "residual": f"{base}/residual_cam_00_fr{i:04d}.npy",
            "stats": f"{base}/shading_stats_cam_00_fr{i:04d}.json",
        }
        write_rgb(root / rels["rgb"], rgb)
        write_npy(root / rels["albedo"], albedo)
        write_npy(root / rels["shading"], shading)
        write_npy(root / rels["residual"], residual)
        (root / rels["stats"]).write_text("{}")
        lines.append(" ".join(rels[k] for k in ("rgb", "albedo", "shading", "residual", "stats")))
        data[i] = {"rgb": rgb, "albedo": albedo, "shading": shading, "residual": residual, "rels": rels}
    write_split(root / "hypersim_train_filtered.txt", lines)
    return data
