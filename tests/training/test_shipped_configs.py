"""Each shipped training config runs as documented on fixture data in the datasets' published formats
(roots, sizes and the base model overridden from the command line, one optimizer step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marigold_toolkit.cli.main import main
from marigold_toolkit.testing import build_random_sd2_base

from ..data import fixtures as fx

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


@pytest.fixture(scope="module")
def sd2(tmp_path_factory) -> Path:
    return build_random_sd2_base(tmp_path_factory.mktemp("sd2") / "base")


def _depth(tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    fx.hypersim_depth(tmp / "hs", rng, n=2)
    fx.vkitti_depth(tmp / "vk", rng, n=2, hw=(20, 40))
    return [f"data.train.0.root={tmp / 'hs'}", "data.train.0.kwargs={resize: [16, 16]}",
            f"data.train.1.root={tmp / 'vk'}", "data.train.1.kwargs={crop_hw: [16, 32]}"]


def _normals(tmp: Path) -> list[str]:
    rng = np.random.default_rng(1)
    fx.hypersim_normals(tmp / "hs", rng, n=2)
    iv = fx.interiorverse_normals(tmp / "iv", rng, n=2)["root"]
    fx.sintel_normals(tmp / "si", rng, n=2, hw=(16, 24))
    return [f"data.train.0.root={tmp / 'hs'}", "data.train.0.kwargs={resize: [16, 16]}",
            f"data.train.1.root={iv}", "data.train.1.kwargs={resize: [16, 16]}",
            f"data.train.2.root={tmp / 'si'}", "data.train.2.kwargs={crop_hw: [16, 16], resize: [16, 16]}"]


def _iid_appearance(tmp: Path) -> list[str]:
    pytest.importorskip("OpenEXR")
    fx.interiorverse_iid(tmp / "iv", np.random.default_rng(2), n=2, hw=(16, 16))
    return [f"data.train.0.root={tmp / 'iv'}"]


def _iid_lighting(tmp: Path) -> list[str]:
    fx.hypersim_iid(tmp / "hs", np.random.default_rng(3), n=2)
    return [f"data.train.0.root={tmp / 'hs'}", "data.train.0.kwargs={resize: [16, 16]}"]


@pytest.mark.parametrize("name,make", [("depth", _depth), ("normals", _normals),
                                       ("iid_appearance", _iid_appearance), ("iid_lighting", _iid_lighting)])
def test_shipped_config_runs(sd2, tmp_path, name, make, capsys):
    overrides = make(tmp_path) + [
        f"model.base={sd2}", f"output_dir={tmp_path / 'run'}", "optim.max_iter=1", "optim.effective_batch_size=2",
        "optim.lr_scheduler.total_iter=1", "optim.lr_scheduler.warmup_steps=0", "data.num_workers=0",
        "data.val=[]", "validation.period=0", "checkpoint.period=1", "logging.tensorboard=false",
    ]
    code = main(["train", str(CONFIGS / f"{name}.yaml"), *overrides])
    assert code == 0, capsys.readouterr().err
    ckpt = tmp_path / "run" / "checkpoints" / "step-000001"
    assert (ckpt / "COMPLETE").is_file() and (ckpt / "model_index.json").is_file()
