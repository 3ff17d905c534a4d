"""Cross-frame self-attention (RollingDepth): the frames of a snippet attend to each other's tokens.

The UNet runs on ``(snippets x frames)`` rows; in every self-attention layer (``attn1``) the tokens of a
snippet's frames are regrouped ``[(b n), hw, c] -> [b, (n hw), c]`` before attention and back after it, so each
frame's queries see the keys of all ``n`` frames. Cross-attention (``attn2``, the text embedding) is unchanged.
With one frame per snippet this is the stock attention, bit for bit. Implemented as a diffusers attention
processor (no patched diffusers): :func:`install_cross_frame_attention` once, then :func:`snippet_frames` around
each UNet call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class CrossFrameAttnProcessor:
    """Self-attention over all frames of a snippet; ``frames`` (shared by the layers of one UNet) says how many
    consecutive rows form one snippet."""

    def __init__(self, group: dict):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.group, self.inner = group, AttnProcessor2_0()

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        n = int(self.group.get("frames", 1))
        if n == 1 or encoder_hidden_states is not None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if hidden_states.ndim != 3:
            raise ValueError(f"cross-frame attention expects [rows, tokens, channels], got {tuple(hidden_states.shape)}")
        rows, tokens, channels = hidden_states.shape
        if rows % n:
            raise ValueError(f"{rows} rows do not split into snippets of {n} frames")
        grouped = hidden_states.reshape(rows // n, n * tokens, channels)
        out = self.inner(attn, grouped, None, attention_mask, temb, *args, **kwargs)
        return out.reshape(rows, tokens, channels)


def install_cross_frame_attention(unet) -> dict:
    """Give every self-attention layer of ``unet`` a :class:`CrossFrameAttnProcessor` (the others keep theirs);
    returns the shared group state that :func:`snippet_frames` sets."""
    group = getattr(unet, "_marigold_cross_frame", None)
    if group is not None:
        return group
    group = {"frames": 1}
    procs = {name: (CrossFrameAttnProcessor(group) if name.endswith("attn1.processor") else proc)
             for name, proc in unet.attn_processors.items()}
    if not any(name.endswith("attn1.processor") for name in procs):
        raise ValueError("the UNet has no self-attention layers (attn1) for cross-frame attention")
    unet.set_attn_processor(procs)
    unet._marigold_cross_frame = group
    return group


@contextlib.contextmanager
def snippet_frames(unet, n: int) -> Iterator[None]:
    """Within the block, every ``n`` consecutive UNet rows are the frames of one snippet."""
    group = install_cross_frame_attention(unet)
    before = group["frames"]
    group["frames"] = int(n)
    try:
        yield
    finally:
        group["frames"] = before
