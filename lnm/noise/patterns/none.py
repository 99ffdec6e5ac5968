"""``none``: the clean labels (rate 0), the clean ceiling every noisy cell is compared with.

On a real-world dataset it trains on the clean (expert) train labels where all are known
(:func:`lnm.noise.real.clean_ceiling`)."""

from __future__ import annotations

import numpy as np

from ..spec import check_num_classes
from .base import ClassConditional, Draw


class Clean(ClassConditional):
    name = "none"
    code = 0
    order = 0
    is_clean = True

    def matrix(self, rate: float, num_classes: int) -> np.ndarray:
        return np.eye(check_num_classes(num_classes))

    def draw(self, draw: Draw, split: str, shared) -> tuple[np.ndarray, None]:
        return draw.labels[split].copy(), None  # nothing is drawn
