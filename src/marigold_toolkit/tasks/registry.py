"""The task registry: task names, ``model_index.json`` pipeline classes and training-folder layouts -> tasks.

Built-in tasks register themselves when :mod:`marigold_toolkit.tasks` is imported; a task of your own registers
with :func:`register_task` (a class decorator) and is then known to every command in the same process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.checks import lookup
from .base import Task, TaskError

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Register a :class:`Task` subclass under its ``name`` (usable as a class decorator).

    Raises:
        TaskError: no name, or the name or one of its pipeline classes already belongs to another task.
    """
    if not (isinstance(cls, type) and issubclass(cls, Task)) or not cls.name:
        raise TaskError(f"{cls!r}: a task must be a Task subclass with a name")
    for other in _TASKS.values():
        if other is cls or other.name == cls.name and other.__qualname__ == cls.__qualname__:
            continue  # registering the same class again (e.g. a re-imported test module) is harmless
        if other.name == cls.name:
            raise TaskError(f"task name {cls.name!r} is already registered by {other.__qualname__}")
        shared = set(other.pipeline_classes) & set(cls.pipeline_classes)
        if shared:
            raise TaskError(f"pipeline class(es) {sorted(shared)} already belong to task {other.name!r}")
    _TASKS[cls.name] = cls
    return cls


def task_names() -> list[str]:
    """The registered task names, in registration order."""
    return list(_TASKS)


def get_task(name: str) -> type[Task]:
    """The task class registered as ``name``.

    Raises:
        TaskError: unknown name (the message lists the known ones).
    """
    return lookup(_TASKS, str(name), "task", TaskError)


def task_for_model_index(index: Mapping[str, Any], where: str = "model_index.json") -> type[Task]:
    """The task of a checkpoint's ``model_index.json``: by its ``_class_name``, else its ``prediction_type``,
    else (legacy and community checkpoints) by which task's :attr:`~Task.index_fields` it carries.

    Raises:
        TaskError: no task matches, or several do.
    """
    cls_name, ptype = index.get("_class_name"), index.get("prediction_type")
    for task in _TASKS.values():
        if cls_name in task.pipeline_classes:
            return task
    for task in _TASKS.values():
        if ptype in task.prediction_types:
            return task
    candidates = [task for task in _TASKS.values() if any(k in index for k in task.index_fields)]
    if len(candidates) == 1:
        return candidates[0]
    known = ", ".join(name for name, task in _TASKS.items() if task.pipeline_classes)
    raise TaskError(f"{where}: cannot tell the task (class {cls_name!r}, prediction_type {ptype!r}); expected a "
                    f"Marigold pipeline of one of the tasks {known}")


def task_for_folders(names: Sequence[str], explicit: bool = False, where: str = "") -> tuple[type[Task], list[str]]:
    """The task and targets of a folder training set: the one task that claims some of the target folder
    ``names`` (:meth:`Task.claims_folders`), else the fallback task with all of them. With ``explicit`` (the
    targets were asked for by name) a claiming task must get exactly the names asked for.

    Raises:
        TaskError: no name, several tasks claim names, or an explicit list mixes a task's target with others.
    """
    names = list(names)
    if not names:
        raise TaskError(f"{where}: no target folder")
    claims = [(task, task.claims_folders(names)) for task in _TASKS.values() if not task.folder_fallback]
    claims = [(task, targets) for task, targets in claims if targets]
    if len(claims) > 1:
        if explicit:
            raise TaskError(f"{' and '.join(t.name for t, _ in claims)} train alone, got targets {names!r}")
        found = [t for _, targets in claims for t in targets]
        raise TaskError(f"{where}: both {' and '.join(f'{n}/' for n in found)} exist; pass targets="
                        f"{' or '.join(repr([n]) for n in found)}")
    if claims:
        task, targets = claims[0]
        if explicit and targets != names:
            raise TaskError(f"{task.name} trains alone, got targets {names!r}")
        return task, targets
    for task in _TASKS.values():
        if task.folder_fallback:
            return task, names
    raise TaskError(f"{where}: no task reads the target folders {names}")


__all__ = ["register_task", "get_task", "task_names", "task_for_model_index", "task_for_folders"]
