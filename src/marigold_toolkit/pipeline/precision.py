"""Mixed precision: half-precision matrix units where the work is, float32 where the rounding would show.

``Predictor.from_pretrained(model, autocast="bfloat16")`` (``--autocast bfloat16``; what ``--fast`` picks on CPUs
with native bfloat16) runs every model call under :func:`torch.autocast`:

* convolutions, linear layers and attention compute in the half-precision dtype (their weights are stored in it
  once, by :func:`prepare_for_autocast`, so no call re-casts them);
* the normalisation layers, the residual stream between blocks, the timestep embedding's sinusoid, the latents,
  the noise and the scheduler's arithmetic stay float32 (the predictor's dtype is float32). Autocast alone would
  not keep the stream float32: a half-precision layer returns half precision, and the first sampler convolution or
  shortcut would turn the stream (and every norm and sum after it) half precision. So half-precision layers
  return float32 (:class:`_Float32Output`; the rounding of their own result stays): in the UNet every one of them
  (``float32_outputs="all"``: its inner sums, norms and activations are float32 too), in the VAE those that write
  into a residual stream (``"residual"``, :data:`RESIDUAL_WRITERS`) — at image resolution float32 inner
  activations would cost more than they return;
* the networks' *narrow ends* — every convolution or linear layer with at most :data:`NARROW_CHANNELS` input or
  output channels: the UNet's ``conv_in``/``conv_out``, the VAE's ``quant_conv``/``post_quant_conv``, the
  encoder's first and the decoder's last convolution — keep float32 weights and run outside autocast. They are a
  sliver of the arithmetic, but their weights' rounding is averaged over few channels and lands directly in the
  latent or the image.

Compared with casting the whole model (``dtype="bfloat16"``, the diffusers way) the result is closer to float32 at
some speed (the float32 residual streams); README "Performance" has the measurements.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from .backends import ModelCalls

#: a convolution or linear layer with at most this many input or output channels is a network's narrow end
NARROW_CHANNELS = 8

#: the dtypes ``autocast=`` accepts
AUTOCAST_DTYPES = ("bfloat16", "float16")

#: layers whose output is added to a residual stream, by diffusers' module names: a resnet's second convolution and
#: shortcut, an up/down-sampler's convolution, an attention's output projection, a transformer's input and output
#: projections and its feed-forward's output
RESIDUAL_WRITERS = re.compile(
    r"(?:^|\.)(?:conv2|conv_shortcut|(?:up|down)samplers\.\d+\.conv|to_out\.0|proj_in|proj_out|ff\.net\.2)$")

#: which half-precision layers :func:`prepare_for_autocast` makes return float32
FLOAT32_OUTPUTS = ("all", "residual")


def parse_autocast(value: str | torch.dtype | None) -> torch.dtype | None:
    """``"bfloat16"`` / ``torch.bfloat16`` -> ``torch.bfloat16`` (``None`` stays ``None``: no autocast).

    >>> parse_autocast("bfloat16"), parse_autocast(None)
    (torch.bfloat16, None)
    """
    if value is None:
        return None
    name = str(value).replace("torch.", "")
    if name not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast {value!r}: use one of {', '.join(AUTOCAST_DTYPES)}")
    return getattr(torch, name)


def is_narrow_end(module: torch.nn.Module, max_channels: int = NARROW_CHANNELS) -> bool:
    """Whether ``module`` is a convolution or linear layer with at most ``max_channels`` input or output channels.

    >>> is_narrow_end(torch.nn.Conv2d(4, 320, 3)), is_narrow_end(torch.nn.Conv2d(320, 320, 3))
    (True, False)
    >>> is_narrow_end(torch.nn.Linear(1024, 4)), is_narrow_end(torch.nn.GroupNorm(32, 320))
    (True, False)
    """
    if isinstance(module, torch.nn.Conv2d):
        return min(module.in_channels, module.out_channels) <= max_channels
    if isinstance(module, torch.nn.Linear):
        return min(module.in_features, module.out_features) <= max_channels
    return False


class _Float32Island:
    """Mixin of the narrow ends: float32 input, float32 weights, autocast off for this layer."""

    prefix = "Float32"

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float(), *args, **kwargs)


class _Float32Output:
    """Mixin of half-precision layers whose result continues in float32: computed under autocast, returned as
    float32 (the sums, norms and activations that follow run in float32)."""

    prefix = "Float32Output"

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return super().forward(x, *args, **kwargs).float()


_SUBCLASSES: dict[tuple[type, type], type] = {}


def _with_mixin(module: torch.nn.Module, mixin: type) -> None:
    """Give ``module`` the class ``<mixin><its class>`` (once; ``state_dict`` keys and values are unchanged)."""
    if isinstance(module, mixin):
        return
    cls = type(module)
    if (mixin, cls) not in _SUBCLASSES:
        _SUBCLASSES[mixin, cls] = type(f"{mixin.prefix}{cls.__name__}", (mixin, cls), {})
    module.__class__ = _SUBCLASSES[mixin, cls]


def _without_mixin(module: torch.nn.Module, mixin: type) -> None:
    if isinstance(module, mixin):
        module.__class__ = next(c for c in type(module).__mro__ if not issubclass(c, mixin))


def prepare_for_autocast(model: torch.nn.Module, dtype: str | torch.dtype,
                         float32_outputs: str = "residual") -> torch.nn.Module:
    """Store ``model``'s convolution and linear weights in ``dtype`` for autocast, in place; returns ``model``.

    ``model`` must be float32 (or already prepared for ``dtype``). Its narrow ends (:func:`is_narrow_end`) keep
    float32 weights and from now on run in float32 even under autocast (their class becomes a ``Float32<Class>``
    subclass). The half-precision layers named by ``float32_outputs`` — ``"all"``, or ``"residual"``: those
    matching :data:`RESIDUAL_WRITERS` — return float32 (class ``Float32Output<Class>``). ``state_dict`` keys and
    values are unchanged; everything else (norms, embeddings' buffers) stays float32. Preparing again applies the
    new ``float32_outputs``. The prepared model must be called under ``torch.autocast(..., dtype)`` (see
    :func:`autocast_calls`): outside it a half-precision layer would get a float32 input.
    """
    dtype = parse_autocast(dtype)
    if float32_outputs not in FLOAT32_OUTPUTS:
        raise ValueError(f"float32_outputs {float32_outputs!r}: use one of {', '.join(FLOAT32_OUTPUTS)}")
    for name, module in model.named_modules():
        first = next(module.parameters(recurse=False), None)
        prepared = isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and not is_narrow_end(module)
        if first is not None and first.dtype != torch.float32 and not (prepared and first.dtype == dtype):
            raise ValueError(f"prepare_for_autocast needs a float32 model; {type(module).__name__} has {first.dtype}")
        if is_narrow_end(module):
            _with_mixin(module, _Float32Island)
        elif prepared:
            module.to(dtype)
            if float32_outputs == "all" or RESIDUAL_WRITERS.search(name):
                _with_mixin(module, _Float32Output)
            else:
                _without_mixin(module, _Float32Output)
    _own_storage(model)
    return model


def _own_storage(model: torch.nn.Module) -> None:
    """Copy every float32 parameter and buffer of ``model`` into memory of its own.

    diffusers loads safetensors weights as slices of the file's memory map, which stays mapped (and resident) while
    any slice lives: without the copy, the few tensors that stay float32 (norms, narrow ends) would keep the whole
    float32 file in memory next to the converted weights.
    """
    for module in model.modules():
        for tensors in (module._parameters, module._buffers):
            for t in tensors.values():
                if t is not None and t.dtype == torch.float32:
                    t.data = t.data.clone()


def autocast_calls(calls: ModelCalls, dtype: str | torch.dtype, device: torch.device | str) -> ModelCalls:
    """``calls`` (UNet, encode, decode) each run under ``torch.autocast(device type, dtype)`` with float32
    outputs, so the loop around them (latents, scheduler, ensembling) stays float32."""
    dtype, device_type = parse_autocast(dtype), torch.device(device).type

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def run(*args: Any) -> torch.Tensor:
            with torch.autocast(device_type, dtype=dtype):
                out = fn(*args)
            return out.float()

        return run

    return ModelCalls(calls.name, wrap(calls.unet), wrap(calls.encode), wrap(calls.decode))
