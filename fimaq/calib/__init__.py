"""Stage A: scale search and LayerNorm reparameterization."""
from .reparam import fold_layernorm, per_channel_params
from .search import SearchOptions
from .stage_a import run_stage_a

__all__ = ['SearchOptions', 'fold_layernorm', 'per_channel_params', 'run_stage_a']
