"""Export a Marigold checkpoint's UNet, VAE encoder and VAE decoder to ONNX (float32, dynamic batch/height/width).

Layout of an export folder (each model in its own sub-folder, so a model over 2 GB can keep its external
weight file next to it)::

    OUTPUT_DIR/manifest.json              what was exported, from what, with which versions and I/O names
    OUTPUT_DIR/unet/model.onnx            (sample [B, 4(1+T), h, w], timestep int64 [], encoder_hidden_states [B, L, D])
                                          -> prediction [B, 4T, h, w]
    OUTPUT_DIR/vae_encoder/model.onnx     image [B, 3, H, W] in [-1, 1] -> posterior mean [B, 4, H/8, W/8] (unscaled)
    OUTPUT_DIR/vae_decoder/model.onnx     latent [B, 4, h, w] (unscaled) -> image [B, 3, 8h, 8w]

The folder only replaces the three networks: scheduler, text embedding and task come from the checkpoint, which
``Predictor.from_pretrained(model, backend="onnx", onnx_dir=...)`` still loads (and checks against the manifest).

The exporter is torch's TorchScript-based one (``dynamo=False``): the ``torch.export``-based exporter specialises
the UNet's data-dependent "latent size not divisible by the upsampling factor" branch. The UNet is traced at an
odd latent size, so its graph carries the general branch (upsampling to the skip connection's size), which is
exact for every size.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch

from ..core.atomic import atomic_folder
from .loading import load_components, vae_stride
from .resolve import CheckpointError

logger = logging.getLogger(__name__)

FORMAT = "marigold-toolkit-onnx"
FORMAT_VERSION = 1
DEFAULT_OPSET = 17
MANIFEST = "manifest.json"
MODELS = ("unet", "vae_encoder", "vae_decoder")


class ExportError(ValueError):
    """An ONNX export folder cannot be used (missing, not an export, or made from another checkpoint)."""


class _UNet(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


class _VaeEncoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, image):
        return self.vae.encode(image).latent_dist.mode()


class _VaeDecoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent):
        return self.vae.decode(latent).sample


def weights_probe(unet: torch.nn.Module) -> list[float]:
    """Sums of ``conv_in`` and ``conv_out`` weights (float64): a cheap fingerprint that tells two checkpoints of
    the same architecture apart, recorded in the manifest and checked when the export is used."""
    return [float(unet.conv_in.weight.double().sum()), float(unet.conv_out.weight.double().sum())]


def _example_inputs(unet, vae, text: torch.Tensor) -> dict[str, tuple]:
    """Trace inputs: batch 2, odd latent size 5x7 (see the module docstring), image size 8x that of the latent."""
    stride = vae_stride(vae)
    h, w, b = 5, 7, 2
    latent_ch = vae.config.latent_channels
    return {
        "unet": (torch.randn(b, unet.config.in_channels, h, w), torch.tensor(999, dtype=torch.int64),
                 text.expand(b, -1, -1).contiguous()),
        "vae_encoder": (torch.rand(b, 3, h * stride, w * stride) * 2 - 1,),
        "vae_decoder": (torch.randn(b, latent_ch, h, w),),
    }


IO_NAMES = {
    "unet": (["sample", "timestep", "encoder_hidden_states"], ["prediction"]),
    "vae_encoder": (["image"], ["latent"]),
    "vae_decoder": (["latent"], ["image"]),
}
_SPATIAL = {0: "batch", 2: "height", 3: "width"}
DYNAMIC_AXES = {
    "unet": {"sample": _SPATIAL, "encoder_hidden_states": {0: "batch"}, "prediction": _SPATIAL},
    "vae_encoder": {"image": _SPATIAL, "latent": _SPATIAL},
    "vae_decoder": {"latent": _SPATIAL, "image": _SPATIAL},
}


def _export_one(module: torch.nn.Module, args: tuple, name: str, folder: Path, opset: int) -> None:
    """Export one model to ``folder/model.onnx``; weights over protobuf's 2 GB end up in one
    ``model.onnx.data`` file beside it."""
    import onnx

    folder.mkdir(parents=True)
    path = folder / "model.onnx"
    inputs, outputs = IO_NAMES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter notes, not actionable for users
        torch.onnx.export(module, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=DYNAMIC_AXES[name], opset_version=opset, do_constant_folding=True)
    if len(list(folder.iterdir())) > 1:  # > 2 GB: the exporter wrote one file per tensor; gather them in one
        model = onnx.load(str(path))
        for stray in folder.iterdir():
            stray.unlink()
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data")
    onnx.checker.check_model(str(path))


@torch.no_grad()
def export_onnx(model: str | Path, output_dir: str | Path, opset: int = DEFAULT_OPSET, variant: str | None = None,
                revision: str | None = None, overwrite: bool = False) -> Path:
    """Export ``model`` (hub id, alias or folder) to ONNX in ``output_dir``; returns the manifest's path.

    Always float32 on the CPU (weights are read from safetensors as for inference). The folder is written under a
    temporary name and renamed into place when complete. An existing non-empty ``output_dir`` is an error unless
    ``overwrite``.
    """
    try:
        import onnx
    except ImportError as exc:
        raise CheckpointError("ONNX export needs onnx: pip install 'marigold-toolkit[fast]'") from exc

    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(f"{out}: exists and is not empty (pass overwrite=True / --overwrite)")
    comps = load_components(model, dtype="float32", device="cpu", variant=variant, revision=revision)
    unet, vae = comps.unet, comps.vae
    example = _example_inputs(unet, vae, comps.empty_text_embedding.float())
    wrappers = {"unet": _UNet(unet), "vae_encoder": _VaeEncoder(vae), "vae_decoder": _VaeDecoder(vae)}
    with atomic_folder(out) as tmp:
        for name in MODELS:
            logger.info("exporting %s ...", name)
            _export_one(wrappers[name].eval(), example[name], name, tmp / name, opset)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "source": comps.spec.source,
            "task": comps.spec.task.name, "target_names": comps.spec.target_names, "dtype": "float32",
            "opset": opset, "files": {name: f"{name}/model.onnx" for name in MODELS},
            "inputs": {name: IO_NAMES[name][0] for name in MODELS},
            "outputs": {name: IO_NAMES[name][1] for name in MODELS},
            "dynamic_axes": {name: {k: {str(a): n for a, n in v.items()} for k, v in DYNAMIC_AXES[name].items()}
                             for name in MODELS},
            "unet": {"in_channels": unet.config.in_channels, "out_channels": unet.config.out_channels,
                     "cross_attention_dim": unet.config.cross_attention_dim, "weights_probe": weights_probe(unet)},
            "vae": {"latent_channels": vae.config.latent_channels, "scaling_factor": vae.config.scaling_factor,
                    "latent_stride": vae_stride(vae)},
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("exported %s to %s", comps.spec.source, out)
    return out / MANIFEST


def read_manifest(onnx_dir: str | Path) -> dict:
    """Read and check ``onnx_dir/manifest.json``; a missing or foreign folder is a one-line error."""
    folder = Path(onnx_dir)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"{folder}: no {MANIFEST}; create the folder with 'marigold export-onnx MODEL {folder}'")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} manifest")
    for name in MODELS:
        if not model_path(folder, manifest, name).is_file():
            raise ExportError(f"{folder}: {manifest['files'][name]} is missing; export again")
    return manifest


def model_path(onnx_dir: str | Path, manifest: dict, name: str) -> Path:
    """Path of model ``name`` (``unet``, ``vae_encoder``, ``vae_decoder``) in an export folder."""
    return Path(onnx_dir) / manifest["files"][name]


def check_matches(manifest: dict, unet: torch.nn.Module, vae: torch.nn.Module, onnx_dir: str | Path) -> None:
    """Error unless the export in ``onnx_dir`` was made from these weights (channels, scaling, weights probe)."""
    u, v = manifest["unet"], manifest["vae"]
    same = (u["in_channels"] == unet.config.in_channels and u["out_channels"] == unet.config.out_channels
            and u["cross_attention_dim"] == unet.config.cross_attention_dim
            and v["scaling_factor"] == vae.config.scaling_factor
            and all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(u["weights_probe"], weights_probe(unet))))
    if not same:
        raise ExportError(f"{onnx_dir}: exported from another checkpoint ({manifest.get('source')}); "
                           "export this model with 'marigold export-onnx'")
