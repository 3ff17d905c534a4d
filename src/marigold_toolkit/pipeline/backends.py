"""Fast-tier inference backends: the three model calls of the shared loop as plain functions.

The denoising loop in :mod:`marigold_toolkit.pipeline.denoise` is the same for every backend; a backend only
supplies the callables it makes (:class:`ModelCalls`):

* ``eager`` — the diffusers modules as loaded (the float32 reference, bit-exact with diffusers' pipelines);
* ``compile`` — the same modules through ``torch.compile`` (inductor by default). Compilation happens lazily at
  the first call of each new input shape; if it fails (no C++ compiler, unsupported platform, a dynamo error),
  one warning is logged and that call and all later ones run eagerly — prediction never fails because of it;
* ``onnx`` — UNet, VAE encoder and VAE decoder exported by :mod:`marigold_toolkit.checkpoints.onnx` and run by
  ONNX Runtime sessions.

ONNX Runtime rather than OpenVINO: both run the same exported graphs (OpenVINO reads the ``.onnx`` files
directly), ``onnxruntime`` is the far smaller install and has GPU/DirectML/CoreML execution providers behind the
same API (the comparison is in the README "Performance").

Deviation from the float32 eager path is measured, not assumed: the tests hold every fast path within
:data:`FAST_TIER_ABSREL_TOL` (AbsRel between depth outputs) on the tiny test checkpoints;
``benchmarks/bench_inference.py --ours`` reports it for the full-size architecture.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoints.onnx import model_path, read_manifest
from .denoise import UNetFn, VaeFn, as_unet_fn

logger = logging.getLogger(__name__)

#: backend names accepted by :class:`~marigold_toolkit.pipeline.predictor.Predictor` and ``--backend``
BACKENDS = ("eager", "compile", "onnx")

#: largest allowed AbsRel between a fast path's depth output and the float32 eager output (0.5 %)
FAST_TIER_ABSREL_TOL = 0.005


class BackendError(ValueError):
    """A backend cannot be set up (missing package, bad export folder, unsupported dtype); one-line message."""


@dataclass
class ModelCalls:
    """What the shared loop calls. ``unet``: :data:`~marigold_toolkit.pipeline.denoise.UNetFn`; ``encode``:
    ``[N, 3, H, W]`` in [-1, 1] -> posterior mean ``[N, 4, H/8, W/8]`` (unscaled); ``decode``: unscaled latents
    ``[R, 4, h, w]`` -> image ``[R, 3, 8h, 8w]`` (about [-1, 1])."""

    name: str
    unet: UNetFn
    encode: VaeFn
    decode: VaeFn


def depth_absrel(pred: np.ndarray, ref: np.ndarray) -> float:
    """AbsRel between two depth outputs in [0, 1]: ``mean(|pred - ref| / max(|ref|, 1e-3))`` (the benchmark's
    deviation column; the floor keeps the near plane, where ``ref`` is 0, from dividing by zero)."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float((np.abs(pred - ref) / np.maximum(np.abs(ref), 1e-3)).mean())


# -- eager ------------------------------------------------------------------------------------------------------
def _channels_last(calls: ModelCalls) -> ModelCalls:
    """Feed every model call channels-last (NHWC) inputs and hand back standard-layout outputs. With the modules'
    weights also channels-last (``module.to(memory_format=torch.channels_last)``), oneDNN/cuDNN convolutions run
    without layout reorders; the numbers change at float-rounding level only."""
    def cl(x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    unet, encode, decode = calls.unet, calls.encode, calls.decode
    return ModelCalls(calls.name, lambda s, t, e: unet(cl(s), t, e).contiguous(),
                      lambda x: encode(cl(x)).contiguous(), lambda z: decode(cl(z)).contiguous())


def eager_calls(unet: torch.nn.Module, vae: torch.nn.Module, channels_last: bool = False,
                decode: VaeFn | None = None) -> ModelCalls:
    """The diffusers modules called as they are (the reference); ``channels_last``: NHWC inputs (the modules must
    have been converted by the caller, see :meth:`~marigold_toolkit.pipeline.predictor.Predictor`); ``decode``:
    another decoder (a tiny one, :func:`~marigold_toolkit.checkpoints.tiny_decoder.tiny_decode_fn`) in place of
    the VAE's."""
    calls = ModelCalls(
        "eager", as_unet_fn(unet), lambda x: vae.encode(x).latent_dist.mode(),
        decode if decode is not None else (lambda z: vae.decode(z).sample),
    )
    return _channels_last(calls) if channels_last else calls


# -- torch.compile ------------------------------------------------------------------------------------------------
def compile_unavailable_reason(backend: str = "inductor", device: torch.device | str = "cpu") -> str | None:
    """Why ``torch.compile(backend=...)`` cannot work here, or ``None`` if it should (a cheap check: it does not
    compile anything; a compile error at run time still falls back to eager, see :func:`compiled_calls`)."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        import torch._dynamo as dynamo
    except Exception as exc:  # noqa: BLE001 - any import failure means no compile
        return f"torch._dynamo cannot be imported ({type(exc).__name__}: {exc})"
    if not dynamo.is_dynamo_supported():
        return "torch.compile is not supported on this Python/platform"
    if backend == "inductor" and torch.device(device).type == "cpu":
        cxx = os.environ.get("CXX") or "c++"
        if not any(shutil.which(c) for c in (cxx, "g++", "clang++")):
            return "inductor needs a C++ compiler on the CPU and none was found (set CXX or install g++)"
    return None


class _CompiledOrEager:
    """Call ``compiled``; if that raises, log one warning, run ``eager`` instead, and keep using ``eager``.

    An error that eager also raises (a genuine input or memory error) propagates unchanged.
    """

    def __init__(self, compiled: Callable, eager: Callable, what: str):
        self.compiled, self.eager, self.what = compiled, eager, what
        self.failed = False

    def __call__(self, *args):
        if not self.failed:
            try:
                return self.compiled(*args)
            except Exception as exc:  # noqa: BLE001 - any compile failure degrades to eager
                self.failed = True
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                logger.warning("torch.compile failed for the %s (%s: %s); running it eagerly",
                               self.what, type(exc).__name__, first[:200])
        return self.eager(*args)


def compiled_calls(
    unet: torch.nn.Module, vae: torch.nn.Module, mode: str | None = None, backend: str = "inductor",
    dynamic: bool | None = None, channels_last: bool = False, decode: VaeFn | None = None,
) -> ModelCalls:
    """``torch.compile`` the UNet and the VAE encode/decode (lazily: each new input shape compiles at its first
    call, which takes long on a CPU; later calls with that shape are fast).

    Args:
        mode: ``torch.compile`` mode (``None``, ``"reduce-overhead"``, ``"max-autotune"``).
        backend: ``"inductor"`` (default, generates C++/Triton code), or ``"aot_eager"``/``"eager"`` (graph
            capture only; used by the tests to check the compiled graphs quickly).
        dynamic: ``torch.compile``'s ``dynamic`` (``None``: static first, dynamic after a shape change).
        channels_last: NHWC inputs, as :func:`eager_calls`.
        decode: another decoder function, as :func:`eager_calls` (compiled like the VAE's).

    With ``mode="reduce-overhead"`` (CUDA graphs) each call's output is copied out of the graph's memory pool, so
    the next replay cannot overwrite a result the loop still holds.

    If compilation is unavailable (see :func:`compile_unavailable_reason`) one warning is logged and the eager
    calls are returned; if it fails at run time each call falls back to eager with one warning.
    """
    eager = eager_calls(unet, vae, channels_last, decode)
    reason = compile_unavailable_reason(backend, next(unet.parameters()).device)
    if reason is not None:
        logger.warning("torch.compile unavailable (%s); running eagerly", reason)
        return eager
    opts = dict(mode=mode, backend=backend, dynamic=dynamic)
    unet_c = as_unet_fn(torch.compile(unet, **opts))
    encode_c = torch.compile(lambda x: vae.encode(x).latent_dist.mode(), **opts)
    decode_c = torch.compile(decode if decode is not None else (lambda z: vae.decode(z).sample), **opts)
    compiled = ModelCalls("compile", unet_c, encode_c, decode_c)
    if mode == "reduce-overhead":
        compiled = ModelCalls("compile", *(_copied(f) for f in (compiled.unet, compiled.encode, compiled.decode)))
    if channels_last:
        compiled = _channels_last(compiled)
    return ModelCalls(
        "compile", _CompiledOrEager(compiled.unet, eager.unet, "UNet"),
        _CompiledOrEager(compiled.encode, eager.encode, "VAE encoder"),
        _CompiledOrEager(compiled.decode, eager.decode, "VAE decoder"),
    )


def _copied(fn: Callable) -> Callable:
    """``fn`` whose output tensor is cloned (out of a CUDA graph's static memory)."""
    return lambda *args: fn(*args).clone()


# -- ONNX Runtime ---------------------------------------------------------------------------------------------
def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError("the onnx backend needs onnxruntime: pip install 'marigold-toolkit[fast]'") from exc
    return onnxruntime


_SHARED_CPU_ARENA: bool | None = None


def _shared_cpu_arena(ort) -> bool:
    """Register one CPU arena allocator in ONNX Runtime's environment (once per process), so the UNet, encoder
    and decoder sessions share their activation memory instead of each keeping its own high-water mark; ``False``
    if this ONNX Runtime cannot (each session then has its own arena)."""
    global _SHARED_CPU_ARENA
    if _SHARED_CPU_ARENA is None:
        try:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            _SHARED_CPU_ARENA = True
        except Exception as exc:  # noqa: BLE001 - older ORT builds lack the API
            logger.debug("no shared ONNX Runtime arena (%s)", exc)
            _SHARED_CPU_ARENA = False
    return _SHARED_CPU_ARENA


class OnnxModel:
    """One ONNX Runtime session called with torch tensors: inputs go to the CPU as numpy, the first output comes
    back as a tensor on ``device``."""

    def __init__(self, path: Path, device: torch.device, providers: list[str] | None = None,
                 num_threads: int | None = None):
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        options.log_severity_level = 3  # errors only: ORT's shape-inference notes are not for users
        cpu_only = not providers or list(providers) == ["CPUExecutionProvider"]
        if cpu_only and _shared_cpu_arena(ort):
            options.add_session_config_entry("session.use_env_allocators", "1")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise BackendError(f"{path}: ONNX Runtime cannot load it ({type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.device = device

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        feed = {name: t.detach().cpu().numpy() for name, t in zip(self.input_names, tensors)}
        return torch.from_numpy(self.session.run(None, feed)[0]).to(self.device)


def onnx_calls(onnx_dir: str | Path, device: torch.device | str = "cpu", providers: list[str] | None = None,
               num_threads: int | None = None) -> ModelCalls:
    """ONNX Runtime sessions for the three models in an export folder (see
    :func:`marigold_toolkit.checkpoints.onnx.export_onnx`); float32 in and out.

    Args:
        providers: ONNX Runtime execution providers (default ``["CPUExecutionProvider"]``).
        num_threads: intra-op threads (default: ``torch.get_num_threads()``, for a like-for-like comparison).
    """
    manifest = read_manifest(onnx_dir)
    device = torch.device(device)
    unet = OnnxModel(model_path(onnx_dir, manifest, "unet"), device, providers, num_threads)
    encoder = OnnxModel(model_path(onnx_dir, manifest, "vae_encoder"), device, providers, num_threads)
    decoder = OnnxModel(model_path(onnx_dir, manifest, "vae_decoder"), device, providers, num_threads)

    def unet_fn(sample: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        timestep = torch.as_tensor(t).reshape(()).to(torch.int64)
        return unet(sample.float(), timestep, text.float())

    return ModelCalls("onnx", unet_fn, lambda x: encoder(x.float()), lambda z: decoder(z.float()))
