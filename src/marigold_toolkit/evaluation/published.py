"""Published numbers to print next to ours (``report.md``). Values as the papers give them; sources noted.

Depth: AbsRel and delta1 as fractions (the papers print percent). Normals: mean angular error (degrees) and the
fraction within 11.25 degrees. ``secondary`` marks numbers only found in third-party transcriptions.
"""

from __future__ import annotations

# benchmark -> list of rows: (method, settings, {metric: value}, source)
PUBLISHED: dict[str, list[tuple[str, str, dict[str, float], str]]] = {}


def _depth(bench: str, rows: list[tuple[str, str, float, float, str]]) -> None:
    PUBLISHED[bench] = [(m, s, {"abs_rel": a / 100, "delta1": d / 100}, src) for m, s, a, d, src in rows]


_depth("nyu_v2", [
    ("Marigold v1-0", "50 steps x 10", 5.5, 96.4, "Ke et al., CVPR 2024, Tab. 1"),
    ("Marigold v1-0", "50 steps x 1", 6.0, 95.9, "Martin Garcia et al. (E2E-FT), Tab. 1"),
    ("Marigold v1-1", "1 step x 1", 5.9, 96.1, "Ke et al., arXiv 2505.09358, Tab. I (secondary)"),
    ("Marigold v1-1", "4 steps x 10", 5.5, 96.4, "Ke et al., arXiv 2505.09358, Tab. I (secondary)"),
    ("Marigold-LCM", "1 step x 1", 6.5, 95.4, "E2E-FT, Tab. 1"),
    ("Marigold + E2E-FT", "1 step", 5.2, 96.6, "E2E-FT, Tab. 1"),
])
_depth("kitti_eigen", [
    ("Marigold v1-0", "50 steps x 10", 9.9, 91.6, "Ke et al., CVPR 2024, Tab. 1"),
    ("Marigold v1-0", "50 steps x 1", 10.5, 90.4, "E2E-FT, Tab. 1"),
    ("Marigold-LCM", "1 step x 1", 10.7, 89.9, "E2E-FT, Tab. 1"),
    ("Marigold + E2E-FT", "1 step", 9.6, 91.9, "E2E-FT, Tab. 1"),
])
_depth("eth3d", [
    ("Marigold v1-0", "50 steps x 10", 6.5, 96.0, "Ke et al., CVPR 2024, Tab. 1"),
    ("Marigold v1-0", "50 steps x 1", 7.1, 95.1, "E2E-FT, Tab. 1"),
    ("Marigold-LCM", "1 step x 1", 7.5, 94.5, "E2E-FT, Tab. 1"),
    ("Marigold + E2E-FT", "1 step", 6.2, 95.9, "E2E-FT, Tab. 1"),
])
_depth("scannet", [
    ("Marigold v1-0", "50 steps x 10", 6.4, 95.1, "Ke et al., CVPR 2024, Tab. 1"),
    ("Marigold v1-0", "50 steps x 1", 6.9, 94.5, "E2E-FT, Tab. 1"),
    ("Marigold-LCM", "1 step x 1", 7.6, 93.8, "E2E-FT, Tab. 1"),
    ("Marigold + E2E-FT", "1 step", 5.8, 96.2, "E2E-FT, Tab. 1"),
])
_depth("diode", [
    ("Marigold v1-0", "50 steps x 10", 30.8, 77.3, "Ke et al., CVPR 2024, Tab. 1"),
    ("Marigold v1-0", "50 steps x 1", 31.0, 77.2, "E2E-FT, Tab. 1"),
    ("Marigold-LCM", "1 step x 1", 31.5, 76.3, "E2E-FT, Tab. 1"),
    ("Marigold + E2E-FT", "1 step", 30.2, 77.9, "E2E-FT, Tab. 1"),
])


def _normals(bench: str, rows: list[tuple[str, str, float, float, str]]) -> None:
    PUBLISHED[bench] = [(m, s, {"mean_angular_error": e, "within_11.25": w / 100}, src) for m, s, e, w, src in rows]


_normals("nyu_v2_normals", [
    ("Marigold + E2E-FT", "1 step", 16.2, 61.4, "E2E-FT, Tab. 2"),
    ("DSINE", "-", 16.4, 59.6, "Lotus v5, Tab. 2"),
])
_normals("scannet_normals", [
    ("Marigold + E2E-FT", "1 step", 14.7, 66.0, "E2E-FT, Tab. 2"),
    ("DSINE", "-", 16.2, 61.0, "Lotus v5, Tab. 2"),
])
_normals("ibims_normals", [
    ("Marigold + E2E-FT", "1 step", 15.8, 69.9, "E2E-FT, Tab. 2"),
    ("DSINE", "-", 17.1, 67.4, "Lotus v5, Tab. 2"),
])
PUBLISHED["interiorverse"] = [
    ("Marigold-IID-Appearance v1-1", "4 steps x 1", {"albedo/psnr": 19.50}, "arXiv 2505.09358, Tab. V (secondary)"),
]
PUBLISHED["hypersim_iid"] = [
    ("Marigold-IID-Lighting v1-1", "4 steps x 1", {"albedo/psnr": 18.21}, "arXiv 2505.09358, Tab. VI (secondary)"),
]


def published_rows(benchmark: str) -> list[tuple[str, str, dict[str, float], str]]:
    """Published rows for a benchmark (empty when none are known)."""
    return PUBLISHED.get(benchmark, [])
