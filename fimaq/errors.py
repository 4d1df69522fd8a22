"""Failures of a quantization run whose message says what happened and what to change.

The tools print them as one line (``error: ...``) with exit code 2; partial results already
written (stage_a.pth, stage_b.pth) stay in the work dir.
"""


class FimaqError(RuntimeError):
    """A run failure with an actionable one-line message."""


class NonFiniteLossError(FimaqError):
    """Stage B produced a NaN/inf loss; the blocks before it are kept."""


class DeviceMemoryError(FimaqError):
    """The device ran out of memory; the message names the budget option to lower."""
