"""Test fixtures shipped with the package (as diffusers' ``testing_utils``): random checkpoints in every public
Marigold layout, or for any task, tiny for tests and full-size for benchmarks."""

from .network import free_port
from .random_checkpoints import (
    LAYOUTS,
    architecture_config,
    build_random_checkpoint,
    build_random_e2e_ft_checkpoint,
    build_random_sd2_base,
    build_random_task_checkpoint,
    build_random_tiny_decoder,
    n_targets_of,
)

__all__ = ["LAYOUTS", "architecture_config", "build_random_checkpoint", "build_random_e2e_ft_checkpoint", "build_random_sd2_base",
           "build_random_task_checkpoint", "build_random_tiny_decoder", "free_port", "n_targets_of"]
