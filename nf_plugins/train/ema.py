"""The paper's weight averaging (appendix C): timm's EMA with a warm-up of the decay."""

from __future__ import annotations

from timm.utils import ModelEmaV3


class PaperEma(ModelEmaV3):
    """timm's EMA with the paper's warm-up: at update i (0 for the first), decay = min(d, (1+i)/(10+i))."""

    def get_decay(self, step: int | None = None) -> float:
        if step is None:
            return self.decay
        return min(self.decay, (1.0 + step) / (10.0 + step))
