"""The OpenMMLab side of fimaq: registered metric, checkpoint loading, data checks, tables.

Importing this package (``custom_imports`` in our configs) registers ``CocoDetMetric``
with mmdet and makes mmengine load local checkpoints as trusted files (see checkpoint.py).
"""
from .checkpoint import load_detector_checkpoint, read_checkpoint, trust_local_checkpoints
from .errors import UserError
from .loop import QuantTestLoop
from .metric import CocoDetMetric

trust_local_checkpoints()

__all__ = ['CocoDetMetric', 'QuantTestLoop', 'UserError', 'load_detector_checkpoint', 'read_checkpoint',
           'trust_local_checkpoints']
