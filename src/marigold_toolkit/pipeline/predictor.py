"""The user-facing inference entry point: ``Predictor.from_pretrained(model).predict(images)``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..checkpoints.loading import MarigoldComponents, enable_vae_tiling, load_components, vae_stride
from ..checkpoints.model_index import INITIAL_NOISE
from ..checkpoints.onnx import check_matches, read_manifest
from ..checkpoints.tiny_decoder import load_tiny_decoder, tiny_decode_fn
from ..core.image import RESAMPLE_METHODS, pad_to_multiple, resize, resize_to_max_edge, to_tensor, unpad
from ..io.images import load_image, pil_to_array
from ..tasks import Task
from ..tasks.base import chw_to_hwc
from .backends import BACKENDS, BackendError, ModelCalls, compiled_calls, eager_calls, onnx_calls
from .denoise import NoisePlan, decode_latents, denoise, draw_noise, encode_images, is_stochastic, make_generators
from .fast import FastPlan, resolve_fast
from .precision import autocast_calls, parse_autocast, prepare_for_autocast
from .high_resolution import HighResolution, predict_high_resolution
from .outputs import MarigoldOutput

logger = logging.getLogger(__name__)

ImageLike = Any  # PIL.Image.Image | np.ndarray | torch.Tensor | str | Path
_NEEDS_ONNX_DIR = "backend 'onnx' needs onnx_dir (--onnx-dir): a folder written by 'marigold export-onnx'"


def _as_tensor(image: ImageLike) -> torch.Tensor:
    """A path, PIL image, array or tensor -> ``[1, 3, H, W]`` float in [0, 1]."""
    if isinstance(image, (str, Path)):
        image = load_image(image)
    elif isinstance(image, Image.Image):
        image = pil_to_array(image)
    return to_tensor(image)


class Predictor:
    """Marigold inference for depth, surface normals and intrinsic decomposition.

    Example::

        predictor = Predictor.from_pretrained("prs-eth/marigold-depth-v1-1")
        out = predictor.predict("photo.jpg", ensemble_size=5, seed=0)
        out.prediction  # float32 [H, W] in [0, 1]
    """

    def __init__(
        self,
        components: MarigoldComponents,
        vae_tiling: bool = False,
        backend: str = "eager",
        onnx_dir: str | Path | None = None,
        vae_tile_size: int | None = None,
        channels_last: bool = False,
        high_resolution: HighResolution | bool | None = None,
        decoder: str | Path | None = None,
        compile_mode: str | None = None,
        fast_plan: FastPlan | None = None,
        autocast: str | torch.dtype | None = None,
    ):
        """Wrap loaded components; the other arguments as in :meth:`from_pretrained` (``compile_mode``:
        ``torch.compile``'s mode for ``backend="compile"``; ``fast_plan``: what ``fast=True`` chose, recorded in
        the outputs' settings)."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
        if backend == "onnx" and vae_tiling:
            raise BackendError("vae_tiling is not available with the onnx backend (the export is untiled)")
        self.components = components
        self.spec = components.spec
        self.unet, self.vae, self.scheduler = components.unet, components.vae, components.scheduler
        self.latent_stride = vae_stride(self.vae)
        if type(self.scheduler).__name__ == "DDPMScheduler":
            from diffusers import DDIMScheduler

            logger.info("checkpoint ships a DDPM scheduler; using DDIM with the same config for inference")
            self.scheduler = DDIMScheduler.from_config(self.scheduler.config)
        if vae_tiling:
            enable_vae_tiling(self.vae, vae_tile_size)
        if channels_last and backend == "onnx":
            raise BackendError("channels_last applies to the torch backends (eager, compile), not onnx")
        self.channels_last = bool(channels_last)
        self.high_resolution = high_resolution
        self.fast_plan = fast_plan
        self.autocast = parse_autocast(autocast)
        if self.autocast is not None:
            if backend == "onnx":
                raise BackendError("autocast applies to the torch backends (eager, compile), not onnx")
            if self.dtype != torch.float32:
                raise ValueError(f"autocast={str(self.autocast).replace('torch.', '')} needs float32 models (it "
                                 f"keeps the loop in float32), not dtype {str(self.dtype).replace('torch.', '')}")
        self.decoder_source = None if decoder is None else str(decoder)
        self.tiny_decoder = None
        if decoder is not None:
            self.tiny_decoder = load_tiny_decoder(
                decoder, self.spec.path, latent_channels=int(self.vae.config.latent_channels),
                stride=self.latent_stride, dtype=self.dtype, device=self.device)
        for module in (self.unet, self.vae, self.tiny_decoder):
            if module is not None and self.autocast is not None:
                # the UNet works at latent resolution, where float32 activations everywhere are cheap
                prepare_for_autocast(module, self.autocast, "all" if module is self.unet else "residual")
            if module is not None and self.channels_last:
                module.to(memory_format=torch.channels_last)
        self.calls: ModelCalls = self._autocast(
            eager_calls(self.unet, self.vae, self.channels_last, decode=self._tiny_decode()))
        if backend == "compile":
            self.compile_models(mode=compile_mode)
        elif backend == "onnx":
            self.use_onnx(onnx_dir)

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
        variant: str | None = None,
        revision: str | None = None,
        vae_tiling: bool = False,
        backend: str = "eager",
        onnx_dir: str | Path | None = None,
        compile: bool = False,
        vae_tile_size: int | None = None,
        channels_last: bool = False,
        task: str | None = None,
        high_resolution: HighResolution | bool | None = None,
        fast: bool = False,
        decoder: str | Path | None = None,
        autocast: str | torch.dtype | None = None,
    ) -> Predictor:
        """Load a checkpoint: hub id (``"prs-eth/marigold-normals-v1-1"``), registry alias or local folder.

        Args:
            dtype: ``"float32"`` (default), ``"float16"`` or ``"bfloat16"``.
            device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``None`` (best available).
            variant: weight files variant, e.g. ``"fp16"`` (default weights where a component lacks it).
            vae_tiling: tiled VAE encode/decode for very large inputs (outputs then differ slightly from untiled).
            backend: ``"eager"`` (default, the reference), ``"compile"`` (``torch.compile``, see
                :meth:`compile_models`) or ``"onnx"`` (ONNX Runtime on the export in ``onnx_dir``, float32 only).
            onnx_dir: folder written by ``marigold export-onnx`` (:func:`~marigold_toolkit.checkpoints.onnx.export_onnx`)
                for this checkpoint; needed by ``backend="onnx"``.
            compile: shorthand for ``backend="compile"``.
            vae_tile_size: tile edge in pixels for ``vae_tiling`` (default: the VAE's ``sample_size``, 768 for
                the public checkpoints; see :func:`~marigold_toolkit.checkpoints.loading.enable_vae_tiling`).
            channels_last: run the UNet and VAE in channels-last (NHWC) memory layout: convolutions skip layout
                reorders (a few percent faster; see the README "Performance"); outputs move at float-rounding
                level (< 1e-4 of the default layout).
            task: the task where the checkpoint's layout does not tell it (the E2E-FT checkpoints are saved as a
                Stable Diffusion pipeline; their registry aliases name it).
            high_resolution: the default of :meth:`predict`'s ``high_resolution`` (global pass + aligned tiles).
            fast: the machine-aware fast tier (:func:`~marigold_toolkit.pipeline.fast.choose_fast_plan`): bfloat16
                autocast channels-last on CPUs with native bf16 (AVX-512-BF16/AMX), float32 eager on other CPUs,
                half precision + ``torch.compile`` with CUDA graphs on CUDA; logs what it chose and why. An
                explicit ``dtype`` or ``autocast``, ``backend``/``compile`` or ``channels_last`` wins over its
                choice.
            decoder: decode latents with a tiny ``AutoencoderTiny`` instead of the VAE decoder
                (:mod:`~marigold_toolkit.checkpoints.tiny_decoder`): ``"bundled"`` (the checkpoint's own
                ``tiny_decoder/``, e.g. the demo models'), a folder (``marigold distill-decoder`` writes one) or a
                hub id (``madebyollin/taesd``). Faster, not exact: a distilled decoder's ``distill_report.json``
                states its measured deviation.
            autocast: mixed precision (:mod:`~marigold_toolkit.pipeline.precision`): ``"bfloat16"`` or
                ``"float16"`` for the convolutions, linear layers and attention, float32 for the norms, the
                residual stream, the networks' narrow ends and the denoising loop (``dtype`` must be float32).
                Closer to float32 than ``dtype="bfloat16"`` at the same speed; what ``fast=True`` picks on CPUs
                with native bfloat16.
        """
        if compile and backend not in ("eager", "compile"):
            raise ValueError(f"compile=True conflicts with backend={backend!r}")
        if backend == "onnx" and onnx_dir is None:
            raise BackendError(_NEEDS_ONNX_DIR)
        backend = "compile" if compile else backend
        if backend not in BACKENDS:  # before loading any weights
            raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
        plan, compile_mode = None, None
        if fast:
            plan, dtype, backend, compile_mode, channels_last, autocast = resolve_fast(
                device, dtype, channels_last, backend, autocast)
        return cls(load_components(model, dtype=dtype, device=device, variant=variant, revision=revision, task=task),
                   vae_tiling=vae_tiling, backend=backend, onnx_dir=onnx_dir, vae_tile_size=vae_tile_size,
                   channels_last=channels_last, high_resolution=high_resolution, decoder=decoder,
                   compile_mode=compile_mode, fast_plan=plan, autocast=autocast)

    # -- fast tier --------------------------------------------------------------------------------------------
    def compile_models(self, mode: str | None = None, backend: str = "inductor") -> Predictor:
        """Run the UNet and VAE encode/decode through ``torch.compile`` from now on; returns ``self``.

        Each new input shape compiles at its first call (slow on a CPU: minutes for the full model); keep the
        processing resolution and ``batch_size`` fixed to compile once. Without a working compiler, or if a
        compilation fails, one warning is logged and inference runs eagerly (see
        :func:`~marigold_toolkit.pipeline.backends.compiled_calls`; ``backend`` is torch.compile's backend).
        """
        if self.backend == "onnx":
            raise BackendError("this predictor released its torch weights for the onnx backend; load the "
                               "checkpoint again to compile it")
        self.calls = self._autocast(compiled_calls(self.unet, self.vae, mode=mode, backend=backend,
                                                   channels_last=self.channels_last, decode=self._tiny_decode()))
        return self

    def _autocast(self, calls: ModelCalls) -> ModelCalls:
        """``calls`` under this predictor's autocast (:mod:`~marigold_toolkit.pipeline.precision`), if any."""
        return calls if self.autocast is None else autocast_calls(calls, self.autocast, self.device)

    def _tiny_decode(self):
        """The tiny decoder as a VAE-decoder function, or ``None`` (the VAE's own decoder)."""
        if self.tiny_decoder is None:
            return None
        return tiny_decode_fn(self.tiny_decoder, self.vae.config.scaling_factor)

    def use_onnx(self, onnx_dir: str | Path, providers: list[str] | None = None) -> Predictor:
        """Run the UNet and the VAE through ONNX Runtime sessions on the export in ``onnx_dir``; returns ``self``.

        The export must come from this checkpoint (checked against its manifest) and the predictor must be float32.
        """
        if onnx_dir is None:
            raise BackendError(_NEEDS_ONNX_DIR)
        if self.dtype != torch.float32:
            raise BackendError(f"the onnx backend runs float32 only, not {str(self.dtype).replace('torch.', '')}")
        if self.autocast is not None:
            raise BackendError("autocast applies to the torch backends (eager, compile), not onnx")
        check_matches(read_manifest(onnx_dir), self.unet, self.vae, onnx_dir)
        # ONNX Runtime holds its own copy of the weights: drop the torch copy first (the modules keep their
        # configs, which is all the loop reads), so the two copies are never in memory together
        self.unet.to("meta")
        self.vae.to("meta")
        try:
            self.calls = onnx_calls(onnx_dir, self.device, providers=providers)
            if self.tiny_decoder is not None:  # the tiny decoder stays a torch module
                self.calls = ModelCalls("onnx", self.calls.unet, self.calls.encode, self._tiny_decode())
        except BackendError as exc:
            self.calls = ModelCalls("onnx", *(_released,) * 3)
            raise BackendError(f"{exc} (this predictor's torch weights were released; load the checkpoint "
                               "again)") from exc
        return self

    @property
    def backend(self) -> str:
        """``"eager"``, ``"compile"`` or ``"onnx"``: what runs the UNet and the VAE."""
        return self.calls.name

    # -- properties -------------------------------------------------------------------------------------------
    @property
    def task(self) -> Task:
        """The checkpoint's :class:`~marigold_toolkit.tasks.base.Task` (``predictor.task.name``: ``"depth"``, ...)."""
        return self.spec.task

    @property
    def target_names(self) -> list[str]:
        return self.spec.target_names

    @property
    def device(self) -> torch.device:
        return self.components.device

    @property
    def dtype(self) -> torch.dtype:
        return self.components.dtype

    # -- inference --------------------------------------------------------------------------------------------
    def resolve_settings(self, num_inference_steps: int | None, processing_resolution: int | None,
                         scheduler=None) -> tuple[int, int]:
        """Steps and processing resolution, the checkpoint's defaults where ``None``; warns where ``scheduler``
        (default: the predictor's) would start below t = 999."""
        scheduler = self.scheduler if scheduler is None else scheduler
        steps = num_inference_steps if num_inference_steps is not None else self.spec.default_denoising_steps
        if steps is None:
            if self.spec.initial_noise == "zeros":  # an end-to-end model is a one-step model by construction
                steps = 1
            else:
                steps = 1 if is_stochastic(self.scheduler) else 10
                logger.warning("checkpoint has no default_denoising_steps; using %d", steps)
        res = processing_resolution if processing_resolution is not None else self.spec.default_processing_resolution
        if res is None:
            res = 768
            logger.warning("checkpoint has no default_processing_resolution; using %d", res)
        if int(steps) < 1:
            raise ValueError("num_inference_steps must be >= 1")
        if int(res) < 0:
            raise ValueError("processing_resolution must be >= 0 (0 = native resolution)")
        spacing = getattr(scheduler.config, "timestep_spacing", None)
        if type(scheduler).__name__ == "DDIMScheduler" and spacing == "leading" and steps < 10:
            logger.warning(
                "DDIM 'leading' spacing with %d step(s) starts below t=999 (the E2E-FT bug); use >= 10 steps", steps
            )
        return int(steps), int(res)

    def prepare_image(self, image: ImageLike, processing_resolution: int, resample: str = "bilinear"):
        """One input as the models see it: ``([1, 3, PH, PW]`` in [-1, 1] in the model dtype, resized to the
        processing resolution (0: native) and replicate-padded to the latent stride, ``(pad_h, pad_w)``, the input
        size, the processing size). The steps run in the model dtype like diffusers' pipelines, except that a
        half-precision resize is computed in float32 (:func:`~marigold_toolkit.core.image.resize`)."""
        x = _as_tensor(image).to(device=self.device, dtype=self.dtype)
        in_size = tuple(x.shape[-2:])
        x = x * 2.0 - 1.0
        if processing_resolution > 0:
            x = resize_to_max_edge(x, processing_resolution, resample)
        proc_size = tuple(x.shape[-2:])
        x, padding = pad_to_multiple(x, self.latent_stride)
        return x, padding, in_size, proc_size

    def resolve_ensembling(self, ensembling_kwargs: dict[str, Any] | None, ensemble_size: int) -> dict[str, Any]:
        """The ensembling keyword arguments :meth:`predict` uses (:meth:`Task.resolve_ensembling`, fast when this
        is a fast-tier predictor): what a result cache should key on."""
        return self.task.resolve_ensembling(ensembling_kwargs, ensemble_size, fast=self.fast_plan is not None)

    @torch.no_grad()
    def predict(
        self,
        images: ImageLike | Sequence[ImageLike],
        num_inference_steps: int | None = None,
        ensemble_size: int = 1,
        processing_resolution: int | None = None,
        match_input_resolution: bool = True,
        resample_method_input: str = "bilinear",
        resample_method_output: str = "bilinear",
        batch_size: int = 1,
        seed: int | Sequence[int] | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        ensembling_kwargs: dict[str, Any] | None = None,
        output_uncertainty: bool | None = None,
        show_progress: bool = False,
        noise: str | None = None,
        high_resolution: HighResolution | bool | None = None,
        latents: torch.Tensor | Sequence[torch.Tensor] | None = None,
        output_latent: bool = False,
    ) -> MarigoldOutput | list[MarigoldOutput]:
        """Predict the checkpoint's targets for one image or a list of images (any sizes).

        Args:
            images: a path, PIL image, ``HxWx3`` array (uint8/uint16 or float in [0, 1]) or ``[3, H, W]`` tensor,
                or a list of them.
            num_inference_steps: denoising steps (default: the checkpoint's ``default_denoising_steps``).
            ensemble_size: predictions per image merged by the task's ensembling.
            processing_resolution: long edge at which the model runs; 0 = native (default: the checkpoint's).
            match_input_resolution: resize predictions back to the input size.
            resample_method_input, resample_method_output: one of ``nearest, nearest-exact, bilinear, bicubic, area``.
            batch_size: (image x member) rows per UNet/VAE call.
            seed: one seed for all images (each image then equals diffusers' pipeline called on it alone with
                ``torch.Generator("cpu").manual_seed(seed)``), or one per image.
            generator: alternatively a CPU/CUDA generator shared by all images in order, or one per image.
            ensembling_kwargs: e.g. ``{"reduction": "mean"}``; depth also ``regularizer_strength``, ``max_iter``,
                ``tol``, ``max_res`` and ``method`` (``"bfgs"``, the authors'; ``"least-squares"``: continuous in
                the members and ~25x cheaper, see :mod:`marigold_toolkit.tasks.depth.ensemble`). A fast-tier
                predictor (``fast=True``) ensembles with the task's ``fast_ensembling_method`` (depth: least squares)
                unless ``method`` is given.
            output_uncertainty: uncertainty maps (default: when ``ensemble_size > 1``).
            show_progress: tqdm bar over denoising rows.
            noise: the initial latents, ``"gaussian"`` (diffusion estimators) or ``"zeros"`` (end-to-end
                fine-tuned models: one deterministic step, the last step's clean-sample estimate is the result);
                default: the checkpoint's ``initial_noise``.
            high_resolution: ``True`` or a :class:`~.high_resolution.HighResolution` (overlap, tile size): a
                global pass at the processing resolution refined by overlapping native-resolution tiles aligned to
                it (:func:`~.high_resolution.predict_high_resolution`; depth). Takes ``seed``, not ``generator``.
                Default (``None``): the predictor's ``high_resolution``; ``False`` turns it off.
            latents: the initial latents instead of drawn noise, per image ``[E, 4T, h, w]`` (``h, w``: the padded
                processing size / the VAE stride), one tensor for a single image or a list; as diffusers'
                ``latents``. The generators are not used for them (stochastic schedulers still draw their
                re-noising from them).
            output_latent: also return each image's final latents ``[E, 4T, h, w]`` (``MarigoldOutput.latent``),
                e.g. to initialise the next video frame from them.

        Returns:
            A :class:`MarigoldOutput` for a single image, a list for a list.
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        if not items:
            return []
        steps, res = self.resolve_settings(num_inference_steps, processing_resolution)
        if ensemble_size < 1:
            raise ValueError("ensemble_size must be >= 1")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        for m in (resample_method_input, resample_method_output):
            if m not in RESAMPLE_METHODS:
                raise ValueError(f"unknown resampling {m!r}; use one of {RESAMPLE_METHODS}")
        if output_uncertainty is None:
            output_uncertainty = ensemble_size > 1
        if output_uncertainty and ensemble_size == 1:
            raise ValueError("uncertainty needs ensemble_size > 1")
        ens_kwargs = self.resolve_ensembling(ensembling_kwargs, ensemble_size)
        gens = make_generators(len(items), seed, generator)
        noise = self.spec.initial_noise if noise is None else noise
        if noise not in INITIAL_NOISE:
            raise ValueError(f"unknown noise {noise!r}; use one of {INITIAL_NOISE}")
        if noise == "zeros" and ensemble_size > 1:
            logger.warning("zero initial noise makes every ensemble member the same; use ensemble_size 1")

        if high_resolution is None:
            high_resolution = self.high_resolution
        if latents is not None:
            latents = [latents] if isinstance(latents, torch.Tensor) else list(latents)
            if len(latents) != len(items):
                raise ValueError(f"got {len(latents)} latents for {len(items)} images")
        if high_resolution:
            if latents is not None or output_latent:
                raise ValueError("high_resolution draws each tile's own noise; latents/output_latent do not apply")
            hr = high_resolution if isinstance(high_resolution, HighResolution) else HighResolution()
            if not match_input_resolution:
                raise ValueError("high_resolution predicts at the input resolution; match_input_resolution=False "
                                 "contradicts it")
            if res <= 0:
                raise ValueError("high_resolution needs a processing_resolution > 0 for its global pass")
            if generator is not None:
                raise ValueError("high_resolution takes seed, not generator (each tile gets a seed of its own)")
            seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed] * len(items)  # counted by make_generators
            outs = [predict_high_resolution(
                self, _as_tensor(item), hr, res, seed=s, batch_size=batch_size, output_uncertainty=output_uncertainty,
                num_inference_steps=steps, ensemble_size=ensemble_size, resample_method_input=resample_method_input,
                resample_method_output=resample_method_output, ensembling_kwargs=ens_kwargs,
                show_progress=show_progress, noise=noise) for item, s in zip(items, seeds)]
            return outs[0] if single else outs

        # 1. preprocess: [-1, 1], resize, pad; group images by padded size so they can share batches
        prepared = [self.prepare_image(img, res, resample_method_input) for img in items]
        groups: dict[tuple, list[int]] = {}
        for i, (x, *_rest) in enumerate(prepared):
            groups.setdefault(tuple(x.shape[-2:]), []).append(i)

        self.scheduler.set_timesteps(steps)
        n_timesteps = len(self.scheduler.timesteps)
        stochastic = is_stochastic(self.scheduler)
        settings = {
            "model": self.spec.source, "num_inference_steps": steps, "ensemble_size": ensemble_size,
            "processing_resolution": res, "match_input_resolution": match_input_resolution,
            "resample_method_input": resample_method_input, "resample_method_output": resample_method_output,
            "scheduler": type(self.scheduler).__name__, "dtype": str(self.dtype).replace("torch.", ""),
            "autocast": None if self.autocast is None else str(self.autocast).replace("torch.", ""),
            "backend": self.backend, "channels_last": self.channels_last, "noise": noise,
            "decoder": self.decoder_source, "fast": self.fast_plan is not None,
        }
        T = self.task.n_targets
        bar = tqdm(total=len(items) * ensemble_size, desc="Marigold", disable=not show_progress, leave=False)
        results: list[MarigoldOutput | None] = [None] * len(items)
        for idxs in groups.values():
            batch = torch.cat([prepared[i][0] for i in idxs])
            image_latent = encode_images(self.vae, batch, batch_size, self.calls.encode)  # [n,4,h,w]
            del batch
            c, h, w = image_latent.shape[1] * T, image_latent.shape[2], image_latent.shape[3]
            plans = [
                draw_noise(gens[i], ensemble_size, (c, h, w), n_timesteps, stochastic, self.dtype, self.device)
                for i in idxs
            ]
            rows_cond = image_latent.repeat_interleave(ensemble_size, dim=0)
            if latents is not None:
                for k, i in enumerate(idxs):
                    given = latents[i]
                    if tuple(given.shape) != (ensemble_size, c, h, w):
                        raise ValueError(f"latents of image {i}: shape {tuple(given.shape)}, expected "
                                         f"{(ensemble_size, c, h, w)} (ensemble, 4 x targets, latent h, w)")
                    plans[k] = NoisePlan(given.to(self.device, self.dtype), plans[k].steps)
            rows_noise = torch.cat([p.initial for p in plans])
            if noise == "zeros" and latents is None:  # the generators still advance as for Gaussian noise
                rows_noise = torch.zeros_like(rows_noise)
            rows_step = torch.cat([p.steps for p in plans]) if stochastic and n_timesteps > 1 else None
            denoised = denoise(
                self.calls.unet, self.scheduler, rows_cond, rows_noise, self.components.empty_text_embedding.to(self.dtype),
                steps, batch_size, rows_step, progress=bar.update, final_x0=noise == "zeros",
            )  # [n*E, 4T, h, w]
            del rows_cond, rows_noise, rows_step
            latents_out = denoised
            flat = denoised.reshape(denoised.shape[0] * T, image_latent.shape[1], h, w)
            decoded = decode_latents(  # [n*E*T, C, PH', PW'], post-processed in float32 whatever the model dtype
                self.vae, flat, batch_size, self.task.decode, self.calls.decode
            ).float()
            for j, i in enumerate(idxs):
                _, padding, in_size, proc_size = prepared[i]
                members = decoded[j * ensemble_size * T : (j + 1) * ensemble_size * T]
                members = unpad(members, padding)
                members = members.reshape(ensemble_size, T, *members.shape[1:])  # [E,T,C,h,w]
                results[i] = self._finish(
                    members, output_uncertainty, ens_kwargs, match_input_resolution, resample_method_output,
                    in_size, proc_size, settings,
                )
                if output_latent:
                    results[i].latent = latents_out[j * ensemble_size : (j + 1) * ensemble_size].clone()
        bar.close()
        return results[0] if single else results

    def _finish(self, members, output_uncertainty, ens_kwargs, match, resample, in_size, proc_size, settings):
        if members.shape[0] > 1:
            pred, unc = self.task.ensemble(members, output_uncertainty, **dict(ens_kwargs))
        else:
            pred, unc = members[0], None
        if not output_uncertainty:
            unc = None
        if match:
            pred = resize(pred, in_size, resample)
            if unc is not None:
                unc = resize(unc, in_size, resample)
            pred = self.task.finalize(pred)
        targets, uncertainty = {}, ({} if unc is not None else None)
        for t, name in enumerate(self.task.target_names):
            targets[name] = chw_to_hwc(pred[t])
            if unc is not None:
                uncertainty[name] = chw_to_hwc(unc[t])
        return MarigoldOutput(
            task=self.task.name, targets=targets, uncertainty=uncertainty, input_size=tuple(in_size),
            processing_size=tuple(proc_size), settings=dict(settings),
        )


def _released(*_args):
    raise BackendError("this predictor's weights were released by a failed switch to the onnx backend; load the "
                       "checkpoint again")
