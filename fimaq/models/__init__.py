"""All knowledge of particular architectures (Swin, detector heads) lives here."""
from .detector import QuantizedModel, UnsupportedModelError, quantize_detector_modules

__all__ = ['QuantizedModel', 'UnsupportedModelError', 'quantize_detector_modules']
