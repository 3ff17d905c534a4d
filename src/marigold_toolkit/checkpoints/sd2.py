"""Pieces of the Stable Diffusion 2 checkpoint layout that are built here, offline: the v-prediction scheduler
settings of SD2 (and Marigold), and a byte-level CLIP tokenizer that needs no download. Used by the demo base
trainer (:mod:`marigold_toolkit.demo.pretrain`) and the random test checkpoints (:mod:`marigold_toolkit.testing`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

#: Stable Diffusion 2's training scheduler settings (v-prediction, scaled-linear betas), as Marigold inherits them
SD2_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
    prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
)


def _byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the bytes 0..255 (GPT-2/CLIP convention)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
    keep += list(range(ord("\xae"), ord("\xff") + 1))
    extra = 0
    table = {}
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def write_tokenizer_vocab(folder: Path) -> tuple[Path, Path]:
    """A byte-level BPE vocabulary with CLIP's special tokens and no merges: any text tokenises offline."""
    chars = _byte_alphabet()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n", encoding="utf-8")
    return vocab_file, merges_file


def finish_tokenizer_folder(folder: Path, vocab_file: Path, merges_file: Path, json_only: bool) -> None:
    """Make the tokenizer folder hold ``vocab.json`` + ``merges.txt`` (public layout) or only ``tokenizer.json``."""
    from transformers import CLIPTokenizerFast

    has_json = (folder / "tokenizer.json").exists()
    if json_only:
        if not has_json:
            fast = CLIPTokenizerFast(vocab_file=str(vocab_file), merges_file=str(merges_file), model_max_length=77)
            fast.save_pretrained(folder)
        for name in ("vocab.json", "merges.txt"):
            (folder / name).unlink(missing_ok=True)
    else:
        shutil.copy(vocab_file, folder / "vocab.json")
        shutil.copy(merges_file, folder / "merges.txt")
        (folder / "tokenizer.json").unlink(missing_ok=True)
