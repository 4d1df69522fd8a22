"""Where a quantization run keeps its partial results, so a stopped run can resume.

``quantize`` asks its ``RunState`` for a saved stage A result before computing one, and
for the blocks already reconstructed before stage B; it hands each finished piece back.
The base class keeps nothing; ``fimaq.engine.checkpoint.WorkDirState`` writes files.
"""
from __future__ import annotations

from typing import Optional

from torch import nn


class RunState:
    """No-op run state: every run starts from scratch and nothing is written."""

    def load_stage_a(self, model: nn.Module) -> Optional[dict]:
        """Load a saved stage A result into ``model`` (after surgery); return its stats or None."""
        return None

    def save_stage_a(self, model: nn.Module, stats: dict, seconds: float) -> None:
        """Keep the model right after stage A."""

    def load_stage_b(self, model: nn.Module) -> tuple[list[str], dict]:
        """Load the reconstructed blocks saved so far; return their names and stats."""
        return [], {}

    def save_block(self, model: nn.Module, done: list[str], stats: dict) -> None:
        """Keep the model after the blocks ``done`` were reconstructed."""
