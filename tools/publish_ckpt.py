#!/usr/bin/env python
"""Strip a training checkpoint to its weights (no optimizer/message hub) for check-in.

    python tools/publish_ckpt.py work_dirs/X/iter_3000.pth checkpoints/X.pth
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

from fimaq.engine.checkpoint import read_checkpoint  # noqa: E402
from fimaq.engine.cli import run_cli  # noqa: E402
from fimaq.engine.report import atomic_path  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('src')
    p.add_argument('dst')
    args = p.parse_args()
    state = read_checkpoint(args.src)
    with atomic_path(args.dst) as tmp:  # creates the folder; never leaves a partial file
        torch.save({'state_dict': {k: v.contiguous() for k, v in state.items()},
                    'meta': {'source': osp.basename(args.src)}}, tmp)
    print(f'[publish_ckpt] {len(state)} tensors, '
          f'{sum(v.numel() for v in state.values()) / 1e6:.2f} M values -> {args.dst}')
    return 0


if __name__ == '__main__':
    run_cli(main)
