"""Resolve a checkpoint name to a local folder: a folder path, a registry alias (a hub id, or a folder inside the
installed package for the bundled models) or a Hugging Face hub id through the local cache."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .registry import resolve_alias

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be found, downloaded or understood. The message is meant for end users."""


def _is_local(source: str) -> bool:
    return os.path.isdir(os.path.expanduser(source))


def _variant_patterns(variant: str | None) -> list[str]:
    patterns = ["*.json", "*.txt", "tokenizer/*", "*.model"]
    weights = "*.safetensors" if variant is None else f"*.{variant}.safetensors"
    patterns += [weights]
    if variant is not None:
        patterns += ["*.safetensors"]  # fall back to plain weights for components without the variant
    return patterns


def resolve_checkpoint_path(source: str, variant: str | None = None, revision: str | None = None) -> Path:
    """Return a local folder for ``source``: a folder path, a registry alias or a Hugging Face hub id.

    Hub ids go through ``huggingface_hub.snapshot_download`` (which uses the local cache and respects
    ``HF_HUB_OFFLINE``); only safetensors weights and configs are fetched.

    Raises:
        CheckpointError: the folder does not exist, or the hub id is neither cached nor downloadable.
    """
    if _is_local(source):  # a folder wins over a registry alias of the same name
        return Path(os.path.expanduser(source)).resolve()
    source = resolve_alias(source)
    if _is_local(source):  # an alias of a bundled model (a folder inside the package)
        return Path(source).resolve()
    if not _HUB_ID.fullmatch(source):
        raise CheckpointError(
            f"model '{source}': no such folder, and not a Hugging Face hub id of the form 'org/name'"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - dependency of diffusers
        raise CheckpointError("huggingface_hub is required to load models by hub id") from exc
    try:
        path = snapshot_download(source, revision=revision, allow_patterns=_variant_patterns(variant))
    except Exception as exc:  # noqa: BLE001 - every hub failure gets the same actionable message
        raise CheckpointError(
            f"model '{source}' is not in the local Hugging Face cache and could not be downloaded "
            f"({type(exc).__name__}). On a machine with hub access run "
            f"`huggingface-cli download {source} --local-dir ./{source.split('/')[-1]}` (or `hf download`), "
            f"copy the folder here and pass its path, e.g. `--model ./{source.split('/')[-1]}`."
        ) from exc
    return Path(path)
