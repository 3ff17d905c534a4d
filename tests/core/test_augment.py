"""The torch/numpy augmentations (torchvision semantics, no torchvision) and the normals task's use of them."""

from __future__ import annotations

import colorsys

import numpy as np
import torch

from marigold_toolkit.core.augment import (
    adjust_hue,
    color_jitter,
    gaussian_blur,
    hsv_to_rgb,
    motion_blur,
    motion_blur_kernel,
    rgb_to_hsv,
)
from marigold_toolkit.tasks.normals import NormalsAugmentation, augment_normals_rgb, draw_normals_params


def test_hsv_matches_colorsys_and_round_trips():
    img = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(0))
    img[:, 0, 0] = 0.5  # grey
    hsv = rgb_to_hsv(img)
    for y, x in [(0, 0), (1, 2), (5, 6), (3, 3)]:
        ref = colorsys.rgb_to_hsv(*img[:, y, x].tolist())
        np.testing.assert_allclose(hsv[:, y, x].numpy(), ref, atol=1e-5)
    torch.testing.assert_close(hsv_to_rgb(hsv), img, atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hue(img, 0.0), img, atol=1e-5, rtol=0)
    shifted = adjust_hue(img, 0.25)
    ref = colorsys.hsv_to_rgb((hsv[0, 1, 2].item() + 0.25) % 1.0, hsv[1, 1, 2].item(), hsv[2, 1, 2].item())
    np.testing.assert_allclose(shifted[:, 1, 2].numpy(), ref, atol=1e-5)


def test_color_jitter_identity_and_ranges():
    img = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(color_jitter(img, 1.0, 1.0, 1.0, 0.0, [3, 1, 0, 2]), img, atol=1e-5, rtol=0)
    out = color_jitter(img, 1.5, 0.5, 0.0, 0.2, [0, 1, 2, 3])
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out[0], out[1])  # saturation 0 -> grey (hue of grey stays grey)


def test_blurs_preserve_constants_and_kernels_are_normalised():
    const = torch.full((3, 20, 20), 100.0)
    torch.testing.assert_close(gaussian_blur(const, 2.5), const)
    torch.testing.assert_close(gaussian_blur(torch.full((3, 5, 5), 7.0), 4.0), torch.full((3, 5, 5), 7.0))  # tiny
    for size in (3, 7, 11):
        for angle in (0.0, 33.0, 90.0, 271.0):
            k = motion_blur_kernel(size, angle)
            assert abs(k.sum().item() - 1.0) < 1e-6 and k[size // 2, size // 2] > 0
    interior = motion_blur(const, 5, 45.0)[:, 3:-3, 3:-3]
    torch.testing.assert_close(interior, torch.full_like(interior, 100.0))


def test_param_draws_use_a_fixed_number_of_values():
    cfg = NormalsAugmentation()
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    draw_normals_params(r1, cfg, blur=True)
    draw_normals_params(r2, cfg, blur=False)
    assert r1.bit_generator.state == r2.bit_generator.state
    p = draw_normals_params(np.random.default_rng(5), cfg, blur=True)
    assert p["motion_kernel"] in (3, 5, 7, 9, 11) and 0 <= p["sigma"] <= 4 and -0.2 <= p["jitter"]["hue"] <= 0.2
    assert sorted(p["jitter"]["order"]) == [0, 1, 2, 3]


def test_augment_normals_rgb_stays_8_bit():
    img = torch.randint(0, 256, (3, 24, 24), generator=torch.Generator().manual_seed(2)).float()
    params = {"gaussian_blur": True, "sigma": 1.5, "motion_blur": True, "motion_kernel": 7, "motion_angle": 30.0,
              "color_jitter": True,
              "jitter": {"brightness": 1.2, "contrast": 0.8, "saturation": 1.3, "hue": -0.1, "order": [2, 0, 3, 1]}}
    out = augment_normals_rgb(img, params, NormalsAugmentation())
    assert out.shape == img.shape and torch.equal(out, out.round()) and out.min() >= 0 and out.max() <= 255


def test_motion_blur_equals_a_zero_padded_depthwise_convolution():
    import torch.nn.functional as F

    img = torch.randint(0, 256, (3, 17, 23), generator=torch.Generator().manual_seed(3)).float()
    for size, angle in ((3, 0.0), (7, 33.0), (11, 271.0)):
        k = motion_blur_kernel(size, angle)
        ref = F.conv2d(img[None], k.expand(3, 1, size, size).contiguous(), padding=size // 2, groups=3)[0]
        torch.testing.assert_close(motion_blur(img, size, angle), ref, atol=1e-3, rtol=1e-5)
