"""Video depth building blocks: snippet indices, cross-frame attention, co-alignment, frame reading/writing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marigold_toolkit.video.coalign import CoalignConfig, fit_coalignment, merge_snippets, sample_pixels
from marigold_toolkit.video.rolling import RollingSettings
from marigold_toolkit.video.snippets import cap_dilation, refinement_dilation, snippet_indices


# --- snippets ----------------------------------------------------------------------------------------------------

def test_snippet_indices_by_hand():
    assert snippet_indices(7, 3, 3) == [[0, 3, 6]]
    assert snippet_indices(5, 2, 1) == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert len(snippet_indices(100, 3, 25)) == 100 - 2 * 25
    with pytest.raises(ValueError, match="spans 51 frames"):
        snippet_indices(50, 3, 25)


def test_dilation_cap_and_settings():
    assert cap_dilation(10, 3, 25) == 2  # int(10 / 3) - 1
    assert cap_dilation(76, 3, 25) == 24 and cap_dilation(78, 3, 25) == 25
    s = RollingSettings(dilations=(1, 10, 25)).for_frames(20)  # caps 10 and 25 to 5, kept once
    assert s.dilations == (1, 5) and s.refine_start_dilation == 5
    assert RollingSettings(dilations=(1, 25), cap_dilation=False).for_frames(20).dilations == (1, 25)
    with pytest.raises(ValueError, match="include 1"):
        RollingSettings(dilations=(10, 25))
    # the refinement dilation falls from 6 to 1 over 10 steps (the authors' truncation)
    assert [refinement_dilation(i, 10, 6) for i in range(10)] == [6, 5, 5, 4, 4, 3, 3, 2, 1, 1]


# --- cross-frame attention ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rolling_ckpt(tmp_path_factory):
    from marigold_toolkit.testing.random_checkpoints import build_random_rollingdepth_checkpoint

    return build_random_rollingdepth_checkpoint(tmp_path_factory.mktemp("rd") / "rollingdepth")


@pytest.fixture(scope="module")
def rolling_predictor(rolling_ckpt):
    from marigold_toolkit.pipeline.predictor import Predictor

    return Predictor.from_pretrained(rolling_ckpt, device="cpu")


def test_the_rollingdepth_layout_loads_as_a_depth_model(rolling_predictor):
    assert rolling_predictor.task.name == "depth" and rolling_predictor.unet.config.in_channels == 8
    assert rolling_predictor.task.prediction_space == "disparity"  # implied by the layout (inverse depth)
    assert rolling_predictor.task.target_names == ["disparity"]


def test_one_frame_snippets_are_the_stock_attention_bit_for_bit(rolling_predictor):
    from marigold_toolkit.pipeline.cross_frame import install_cross_frame_attention, snippet_frames

    unet = rolling_predictor.unet
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 8, 8, 8, generator=g)
    text = rolling_predictor.components.empty_text_embedding.expand(6, -1, -1)
    t = torch.tensor(999)
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet.set_attn_processor(AttnProcessor2_0())
    unet.__dict__.pop("_marigold_cross_frame", None)
    stock = unet(x, t, encoder_hidden_states=text).sample
    install_cross_frame_attention(unet)
    with snippet_frames(unet, 1):
        one = unet(x, t, encoder_hidden_states=text).sample
    torch.testing.assert_close(one, stock, rtol=0, atol=0)
    with snippet_frames(unet, 3):
        three = unet(x, t, encoder_hidden_states=text).sample
    assert (three - stock).abs().max() > 1e-3  # frames now see each other
    # a snippet of three identical frames: attending to three copies of the same keys is attending to one
    same = x[:1].repeat(3, 1, 1, 1)
    with snippet_frames(unet, 3):
        copies = unet(same, t, encoder_hidden_states=text[:3]).sample
    single = unet(x[:1], t, encoder_hidden_states=text[:1]).sample
    torch.testing.assert_close(copies, single.repeat(3, 1, 1, 1), rtol=1e-4, atol=1e-5)


def test_cross_frame_processor_against_explicit_attention():
    from diffusers.models.attention_processor import Attention

    from marigold_toolkit.pipeline.cross_frame import CrossFrameAttnProcessor

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    group = {"frames": 2}
    attn.set_processor(CrossFrameAttnProcessor(group))
    h = torch.randn(4, 5, 16)  # 2 snippets x 2 frames, 5 tokens each
    out = attn(h)
    # by hand: per snippet, all 10 tokens attend to all 10 tokens
    ref = []
    for b in range(2):
        tokens = h[2 * b : 2 * b + 2].reshape(1, 10, 16)
        q, k, v = attn.to_q(tokens), attn.to_k(tokens), attn.to_v(tokens)
        q, k, v = (z.view(1, 10, 2, 8).transpose(1, 2) for z in (q, k, v))
        w = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)
        o = (w @ v).transpose(1, 2).reshape(1, 10, 16)
        ref.append(attn.to_out[0](o).reshape(2, 5, 16))
    torch.testing.assert_close(out, torch.cat(ref), rtol=1e-5, atol=1e-6)


# --- co-alignment -------------------------------------------------------------------------------------------------

def _scene(n: int = 12, h: int = 24, w: int = 32) -> np.ndarray:
    """A smooth positive 'inverse depth' video: a moving ramp plus a blob."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    frames = [0.5 + 0.4 * yy + 0.3 * np.exp(-((xx - 0.2 - 0.03 * k) ** 2 + (yy - 0.4) ** 2) / 0.02)
              for k in range(n)]
    return np.stack(frames).astype(np.float32)


def test_coalignment_recovers_known_snippet_scales_and_shifts():
    video = _scene()
    n = video.shape[0]
    rng = np.random.default_rng(0)
    dilations = (1, 3)
    indices = [snippet_indices(n, 3, d) for d in dilations]
    truth = [(rng.uniform(0.8, 1.25, len(i)), rng.uniform(-0.05, 0.05, len(i))) for i in indices]
    # each snippet saw the video through its own unknown affine map: x = (v - t) / s
    snippets = [np.stack([(video[idx] - t) / s for idx, s, t in zip(ind, *tr)]) for ind, tr in zip(indices, truth)]
    offset = float(min(s.min() for s in snippets))
    cfg = CoalignConfig(factor=2, border=2, iterations=1000, lr=1e-2)
    samples = [sample_pixels(s, cfg.factor, cfg.border) - offset for s in snippets]
    fit = fit_coalignment(samples, indices, n, offset, cfg)
    assert fit.losses[-1] < 0.2 * fit.losses[0]
    merged = merge_snippets(snippets, indices, fit, n)
    # the merged video is the true one up to one global scale and shift
    a, b = np.polyfit(video.ravel(), merged.ravel(), 1)
    residual = np.abs(merged - (a * video + b)).max() / np.ptp(merged)
    assert residual < 0.05, residual  # the regularisers (s >= 1, t -> 0) keep it from exactly 0
    # and the unaligned average (scales 1, shifts 0) is far from it
    naive = merge_snippets(snippets, indices, type(fit)([np.ones_like(s) for s in fit.scales],
                                                         [np.zeros_like(t) for t in fit.shifts], offset, []), n)
    a0, b0 = np.polyfit(video.ravel(), naive.ravel(), 1)
    assert np.abs(naive - (a0 * video + b0)).max() / np.ptp(naive) > 4 * residual


def test_coalignment_input_checks():
    with pytest.raises(ValueError, match="covered by no snippet"):
        fit_coalignment([np.ones((1, 2, 4), np.float32)], [[[0, 1]]], 3, 0.0, CoalignConfig(iterations=1))
    with pytest.raises(ValueError, match="too small"):
        sample_pixels(np.ones((1, 3, 4, 4)), 10, 2)


# --- frames in and out ---------------------------------------------------------------------------------------------

def test_video_file_round_trip_and_selection(tmp_path):
    pytest.importorskip("av")
    from marigold_toolkit.io.video import FrameSelection, FrameSource, VideoWriter

    frames = [np.full((21, 30, 3), 10 * k, dtype=np.uint8) for k in range(12)]  # odd height: padded by one
    with VideoWriter(tmp_path / "v.mp4", fps=6) as vw:
        for f in frames:
            vw.write(f)
    src = FrameSource(tmp_path / "v.mp4")
    assert len(src) == 12 and src.fps == pytest.approx(6) and src.size == (22, 30) and src.stem == "v"
    got = [f for _, f in src]
    assert all(abs(float(g.mean()) - 10 * k) < 3 for k, g in enumerate(got))  # lossy, but the right frames
    sel = FrameSource(tmp_path / "v.mp4", FrameSelection(start=0.5, end=1.5, stride=2))
    assert sel.numbers == [3, 5, 7]
    assert [abs(float(f.mean()) - 10 * n) < 3 for n, f in sel] == [True] * 3
    assert [n for n, _ in sel.frames(skip=2)] == [7]


def test_frame_folder_and_bad_inputs(tmp_path):
    from PIL import Image

    from marigold_toolkit.io.video import FrameSelection, FrameSource, VideoReadError

    folder = tmp_path / "shot"
    folder.mkdir()
    for k in (2, 0, 1):
        Image.fromarray(np.full((8, 10, 3), k, np.uint8)).save(folder / f"f{k:03d}.png")
    src = FrameSource(folder, FrameSelection(max_frames=2))
    assert src.stem == "shot" and len(src) == 2 and [int(f[0, 0, 0]) for _, f in src] == [0, 1]
    with pytest.raises(VideoReadError, match="no such file"):
        FrameSource(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(VideoReadError, match="junk.mp4"):
        FrameSource(tmp_path / "junk.mp4")
    with pytest.raises(ValueError, match="start < end"):
        FrameSelection(start=2, end=1)
