"""What every command-line tool shares: config loading and one-line errors."""
from __future__ import annotations

import os.path as osp
import sys
from typing import Callable, Optional

from mmengine.config import Config, DictAction

__all__ = ["DictAction", "load_config", "run_cli"]  # DictAction is re-exported for the tools

from ..errors import FimaqError
from .errors import UserError


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """mmengine Config with ``--cfg-options`` merged; unreadable files become UserError."""
    if not osp.isfile(path):
        raise UserError(f'config {path} does not exist; pass a config file such as '
                        'mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f'config {path} could not be read ({type(exc).__name__}: {first[:160]}); '
                        'fix the file') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def run_cli(main: Callable[[], int]) -> None:
    """Run a tool's main(); a UserError prints as one line on stderr with exit code 2."""
    try:
        code = main()
    except (UserError, FimaqError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        code = 130
    sys.exit(code)
