"""marigold-toolkit: Marigold dense prediction (depth, surface normals, intrinsic decomposition).

>>> from marigold_toolkit import Predictor  # doctest: +SKIP
>>> out = Predictor.from_pretrained("prs-eth/marigold-depth-v1-1").predict("photo.jpg")  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .checkpoints import CheckpointError, MarigoldSpec, list_models, load_components, register_model  # noqa: E402
from .pipeline import HighResolution, MarigoldOutput, Predictor  # noqa: E402
from .tasks import Task, get_task, register_task  # noqa: E402
from .tasks.depth import colorize_depth  # noqa: E402
from .tasks.intrinsics import intrinsic_to_rgb  # noqa: E402
from .tasks.normals import normals_to_rgb  # noqa: E402
from .visualize import uncertainty_heatmap  # noqa: E402

__all__ = ["Predictor", "MarigoldOutput", "HighResolution", "MarigoldSpec", "CheckpointError", "Task", "get_task",
           "register_task", "load_components", "list_models", "register_model", "colorize_depth", "normals_to_rgb",
           "uncertainty_heatmap", "intrinsic_to_rgb", "__version__"]
