"""Labelling at scale: sharded, resumable batch inference (``marigold label``), locally or on Ray Data.

* :mod:`.sources`: inputs (files, folders, globs, ``.txt`` lists, Parquet tables, fsspec URLs) -> keyed items;
* :mod:`.records`: per-image seeds, the settings hash, the encodings of the output columns;
* :mod:`.shards`: the shard plan, finished shards, the one shard writer, the manifest, reading labels back;
* :mod:`.worker`: one model per process (decode -> predict -> encode);
* :mod:`.engines`: the local engine and the Ray Data pipeline;
* :mod:`.job`: :func:`run_label_job`, what ``marigold label`` runs.

Example::

    from marigold_toolkit.label import InferenceSettings, LabelJob, iter_labels, run_label_job

    run_label_job(LabelJob(["photos/"], Path("labels"), "depth-v1-1", InferenceSettings(num_inference_steps=1)))
    for row in iter_labels("labels"):
        row["key"], row["depth"]  # float32 H x W in [0, 1]
"""

from .engines import RayOptions
from .job import LabelError, LabelJob, LabelSummary, run_label_job
from .records import InferenceSettings, decode_value, image_seed
from .shards import iter_labels, read_manifest

__all__ = ["InferenceSettings", "LabelError", "LabelJob", "LabelSummary", "RayOptions", "decode_value", "image_seed",
           "iter_labels", "read_manifest", "run_label_job"]
