"""The evaluation protocol: benchmark datasets (:mod:`.datasets`), the cached benchmark runner, folder-mode
scoring, reports and plots. What a score means is each task's (:meth:`~marigold_toolkit.tasks.base.Task.score`)."""
