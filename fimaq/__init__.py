"""fimaq: post-training quantization (FIMA-Q and baselines) of vision-transformer detectors."""
from .api import quantize
from .config import METHODS, QuantConfig, QuantConfigError

__all__ = ['METHODS', 'QuantConfig', 'QuantConfigError', 'quantize']
