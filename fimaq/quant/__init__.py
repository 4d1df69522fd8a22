"""What a quantized op is: fake quantizers and the layers that use them. Imports nothing of ours."""
from .layers import QuantConv2d, QuantLinear, QuantMatMul, QuantModule, set_quant_mode
from .quantizer import Log2Quantizer, UniformQuantizer, fake_quant, round_ste

__all__ = ['Log2Quantizer', 'QuantConv2d', 'QuantLinear', 'QuantMatMul', 'QuantModule',
           'UniformQuantizer', 'fake_quant', 'round_ste', 'set_quant_mode']
