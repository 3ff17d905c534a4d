"""``model_index.json``: the one reader and writer. On every public layout our writer produces exactly what
diffusers' ``save_pretrained`` wrote, and write-then-read gives back the spec (also for specs built from a
training config, as the trainer does)."""

from __future__ import annotations

import json
import shutil

import pytest

from marigold_toolkit.checkpoints import CheckpointError, build_model_index, read_spec, write_model_index
from marigold_toolkit.checkpoints.model_index import MarigoldSpec
from marigold_toolkit.tasks import DepthTask, IntrinsicsTask, NormalsTask, get_task
from marigold_toolkit.testing import LAYOUTS


def _same_spec(a: MarigoldSpec, b: MarigoldSpec) -> None:
    assert type(a.task) is type(b.task) and a.target_names == b.target_names
    assert a.task.model_index_fields() == b.task.model_index_fields()
    assert (a.prediction_type, a.default_denoising_steps, a.default_processing_resolution, a.scheduler_class) == (
        b.prediction_type, b.default_denoising_steps, b.default_processing_resolution, b.scheduler_class)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_writer_reproduces_diffusers_model_index(checkpoints, layout):
    written_by_diffusers = json.loads((checkpoints[layout] / "model_index.json").read_text())
    assert build_model_index(read_spec(checkpoints[layout])) == written_by_diffusers


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_write_then_read_gives_the_same_spec(checkpoints, layout, tmp_path):
    folder = tmp_path / layout
    shutil.copytree(checkpoints[layout], folder)
    spec = read_spec(folder)
    (folder / "model_index.json").unlink()
    write_model_index(folder, spec)
    _same_spec(read_spec(folder), spec)


@pytest.mark.parametrize("layout, task, targets, pipeline", [
    ("depth-v1-1", "depth", ["depth"], {"scale_invariant": True, "shift_invariant": False}),
    ("normals-v1-1", "normals", ["normals"], {"use_full_z_range": False}),
    ("iid-appearance-v1-1", "intrinsics", ["albedo", "shading"], {"target_properties": None}),
    ("iid-appearance-v1-1", "intrinsics", ["albedo", "material"], {"target_properties": {
        "target_names": ["albedo", "material"], "albedo": {"prediction_space": "srgb"},
        "material": {"prediction_space": "stack", "sub_target_names": ["roughness", "metallicity", None]}}}),
])
def test_trainer_spec_round_trip(checkpoints, tmp_path, layout, task, targets, pipeline):
    """A spec built like the trainer builds it (task from the config) survives write + read, whatever the task;
    an intrinsics config without ``target_properties`` still writes loadable target names."""
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoints[layout], folder)
    spec = MarigoldSpec(path=folder, source="cfg", task=get_task(task).from_config(targets, pipeline),
                        default_denoising_steps=1, default_processing_resolution=512)
    write_model_index(folder, spec)
    back = read_spec(folder)
    _same_spec(back, MarigoldSpec(path=folder, source="cfg", task=spec.task, prediction_type=task,
                                  default_denoising_steps=1, default_processing_resolution=512))
    assert back.target_names == targets


def test_task_specific_fields_are_read_by_the_task(checkpoints, tmp_path):
    cases = {"depth-v1-1": (DepthTask, {"prediction_type": "depth", "scale_invariant": True, "shift_invariant": True}),
             "depth-disparity-v1-1": (DepthTask, {"prediction_type": "disparity", "scale_invariant": True,
                                                  "shift_invariant": True}),
             "normals-v1-1": (NormalsTask, {"use_full_z_range": True}),
             "iid-lighting-v1-1": (IntrinsicsTask, None)}
    for layout, (cls, fields) in cases.items():
        spec = read_spec(checkpoints[layout])
        assert isinstance(spec.task, cls)
        if fields is not None:
            assert spec.task.model_index_fields() == fields
    assert read_spec(checkpoints["iid-lighting-v1-1"]).task.up_to_scale_targets() == ("shading", "residual")


def test_unknown_pipeline_class_is_a_checkpoint_error(checkpoints, tmp_path):
    folder = tmp_path / "x"
    shutil.copytree(checkpoints["depth-v1-1"], folder)
    index = json.loads((folder / "model_index.json").read_text())
    for key in ("scale_invariant", "shift_invariant", "prediction_type"):
        index.pop(key)
    index["_class_name"] = "SomethingElsePipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="cannot tell the task"):
        read_spec(folder)
