"""Tasks: everything task-specific, one :class:`~marigold_toolkit.tasks.base.Task` per task, and the registry
that maps task names and ``model_index.json`` pipeline classes to them. Importing this package registers the
built-in tasks (depth, normals, intrinsics); the rest of the package asks the task.
"""

# isort: off - the built-in tasks register in this order (the order of `marigold predict --task` choices)
from .base import ErrorMap, ImageContext, Task, TaskError, ensemble_pixelwise, ensembling_kwargs
from .depth import DepthTask
from .normals import NormalsTask
from .intrinsics import IntrinsicsTask
from .depth.completion import DepthCompletionTask
from .registry import get_task, register_task, task_for_folders, task_for_model_index, task_names

# isort: on

__all__ = ["Task", "TaskError", "ErrorMap", "ImageContext", "DepthTask", "NormalsTask", "IntrinsicsTask",
           "DepthCompletionTask", "ensemble_pixelwise", "ensembling_kwargs",
           "get_task", "register_task", "task_for_folders", "task_for_model_index", "task_names"]
