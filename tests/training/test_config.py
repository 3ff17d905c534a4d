"""Training configs: the shipped files, inheritance, overrides and clear errors for typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from marigold_toolkit.training.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


@pytest.mark.parametrize("name,task,targets,lr,max_iter,total,probs", [
    ("depth", "depth", ["depth"], 3e-5, 30000, 25000, [0.9, 0.1]),
    ("normals", "normals", ["normals"], 6e-5, 30000, 25000, [0.5, 0.49, 0.01]),
    ("iid_appearance", "intrinsics", ["albedo", "material"], 3e-5, 50000, 25000, [1.0]),
    ("iid_lighting", "intrinsics", ["albedo", "shading", "residual"], 8e-5, 50000, 45000, [1.0]),
])
def test_shipped_configs_hold_the_paper_settings(name, task, targets, lr, max_iter, total, probs):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.task == task and list(cfg.targets) == targets
    assert cfg.optim.lr == pytest.approx(lr) and cfg.optim.max_iter == max_iter
    assert cfg.optim.lr_scheduler.total_iter == total and cfg.optim.lr_scheduler.final_ratio == 0.01
    assert cfg.optim.lr_scheduler.warmup_steps == 100
    assert (cfg.optim.micro_batch_size, cfg.optim.effective_batch_size) == (2, 32)
    assert [d.prob for d in cfg.data.train] == pytest.approx(probs)
    assert cfg.diffusion.version == "v1.1" and cfg.diffusion.multi_res_noise.strength == 0.9
    assert cfg.diffusion.multi_res_noise.annealed and cfg.seed == 2024
    assert cfg.model.base == "stabilityai/stable-diffusion-2"
    if task == "intrinsics":
        assert list(cfg.pipeline.target_properties.target_names) == targets


def test_overrides_and_env_interpolation(monkeypatch, tmp_path):
    monkeypatch.setenv("HYPERSIM_DIR", str(tmp_path / "hs"))
    cfg = load_config(CONFIGS / "depth.yaml", ["optim.max_iter=7", "output_dir=/tmp/x", "optim.lr=1e-4"])
    assert cfg.optim.max_iter == 7 and cfg.output_dir == "/tmp/x" and cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.data.train[0].root == str(tmp_path / "hs")


def test_inheritance_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("optim:\n  lr: 0.5\n  max_iter: 3\nseed: 1\n")
    (tmp_path / "b.yaml").write_text("base_config: a.yaml\noptim:\n  max_iter: 4\n"
                                     "data:\n  train:\n    - {name: folder, root: /r}\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert (cfg.optim.lr, cfg.optim.max_iter, cfg.seed) == (0.5, 4, 1)
    assert cfg.data.train[0].prob == 1.0 and cfg.data.train[0].split is None


@pytest.mark.parametrize("text,match", [
    ("optim:\n  lrr: 1\n", "lrr"),
    ("optim:\n  lr: fast\n", "lr"),
    ("task: segmentation\n", "unknown task 'segmentation'; known tasks: depth, depth_completion, intrinsics, normals"),
    ("diffusion:\n  version: v2\n", "diffusion.version"),
    ("diffusion:\n  mode: e2e\n  e2e_timestep: 500\n", "e2e_timestep must be 999"),
    ("diffusion:\n  mode: e2e\nvalidation:\n  num_inference_steps: 4\n", "must be 1 in e2e mode"),
    ("optim:\n  effective_batch_size: 3\n", "multiple"),
    ("data:\n  train:\n    - {name: folder, root: /r, probb: 1}\n", "probb"),
    ("a: [1, 2\n", "cannot parse YAML"),
])
def test_typos_and_bad_values_are_clear_errors(tmp_path, text, match):
    f = tmp_path / "c.yaml"
    base = "data:\n  train:\n    - {name: folder, root: /r}\n" if "train" not in text else ""
    f.write_text(base + text)
    with pytest.raises(ConfigError, match=match):
        load_config(f)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(CONFIGS / "depth.yaml", ["optim.max_iter"])
    with pytest.raises(ConfigError, match="max_itr"):
        load_config(CONFIGS / "depth.yaml", ["optim.max_itr=3"])


def test_base_config_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("base_config: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base_config: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_override_inside_a_dataset_list():
    cfg = load_config(CONFIGS / "depth.yaml", ["data.train.0.root=/data/hs", "data.train.1.prob=0.2"])
    assert cfg.data.train[0].root == "/data/hs" and cfg.data.train[1].prob == pytest.approx(0.2)
    assert cfg.data.train[1].name == "vkitti_depth"
