"""DPLR Fisher state of one block: k |gradient| rows G, k |output change| rows D, B⁻¹."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor


class FisherState:
    """Rows captured k times during a block's reconstruction (modes ``q`` and ``qf``).

    ``q``: at iterations 0, iters/k, 2·iters/k, ...; ``qf``: the first k iterations.
    ``B = D Dᵀ`` (k × k) is inverted with a ridge that grows until it is well conditioned;
    that is logged once per block.
    """

    def __init__(self, k: int, iters: int, mode: str = 'q', max_cond: float = 1e8,
                 log: Callable[[str], None] = print) -> None:
        if mode not in ('q', 'qf'):
            raise ValueError(f'fisher mode must be "q" or "qf", got {mode!r}')
        self.k, self.iters, self.mode, self.max_cond, self.log = k, iters, mode, max_cond, log
        self.g_rows: list[Tensor] = []
        self.d_rows: list[Tensor] = []
        self.b_inv: Optional[Tensor] = None
        self.regularised_logged = False

    def due(self, step: int) -> bool:
        """Is a Fisher update due at this iteration?"""
        if len(self.g_rows) >= self.k:
            return False
        if self.mode == 'qf':
            return step < self.k
        return step % max(1, self.iters // self.k) == 0

    def add(self, g: Tensor, d: Tensor) -> None:
        """One capture: g = E|∂KL/∂y|, d = E|ŷ - y| (flattened, averaged over images)."""
        self.g_rows.append(g.detach().flatten().float())
        self.d_rows.append(d.detach().flatten().float())
        self.b_inv = self._invert(torch.stack(self.d_rows))

    @property
    def G(self) -> Tensor:
        return torch.stack(self.g_rows)

    def _invert(self, D: Tensor) -> Tensor:
        B = (D @ D.t()).double()
        eye = torch.eye(B.shape[0], dtype=B.dtype, device=B.device)
        ridge = 0.0
        scale = float(B.diagonal().mean().clamp(min=1e-30))
        while torch.linalg.cond(B + ridge * eye) > self.max_cond:
            ridge = scale * 1e-8 if ridge == 0 else ridge * 10
        if ridge and not self.regularised_logged:
            self.log(f'Fisher: B = D Dᵀ is ill-conditioned (k={B.shape[0]}); '
                     f'regularised with ridge {ridge:.3g}')
            self.regularised_logged = True
        return torch.linalg.inv(B + ridge * eye).float()
