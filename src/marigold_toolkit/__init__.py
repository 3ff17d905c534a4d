"""marigold-toolkit: Marigold dense prediction (depth, surface normals, intrinsic decomposition).

>>> from marigold_toolkit import Predictor  # doctest: +SKIP
>>> out = Predictor.from_pretrained("prs-eth/marigold-depth-v1-1").predict("photo.jpg")  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .models import CheckpointError, MarigoldSpec, load_components  # noqa: E402
from .pipeline import MarigoldOutput, Predictor  # noqa: E402
from .registry import list_models, register_model  # noqa: E402
from .visualize import colorize_depth, intrinsic_to_rgb, normals_to_rgb, uncertainty_heatmap  # noqa: E402

__all__ = ["Predictor", "MarigoldOutput", "MarigoldSpec", "CheckpointError", "load_components", "list_models",
           "register_model", "colorize_depth", "normals_to_rgb", "uncertainty_heatmap", "intrinsic_to_rgb",
           "__version__"]
