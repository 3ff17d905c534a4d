"""Task-agnostic building blocks with no imports from the rest of the package: shape checks, array conversion,
atomic writes, image geometry, image augmentations and the generic metric plumbing."""
