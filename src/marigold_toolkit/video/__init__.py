"""Video depth: per-frame prediction with shared initial latents (``latent-init``) and RollingDepth (``rolling``:
multi-frame snippets with cross-frame self-attention, global co-alignment, optional refinement)."""
