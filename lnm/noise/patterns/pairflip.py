"""``pairflip``: each label flips with probability ε to the next class, ``(y + 1) mod C`` (with
two classes exactly symmetric noise: ``lnm validate`` says so)."""

from __future__ import annotations

import numpy as np

from ..spec import check_num_classes, check_rate
from .base import ClassConditional


def pairflip_matrix(num_classes: int, rate: float) -> np.ndarray:
    """Diagonal ``1 - rate`` and ``T[i, (i + 1) % C] = rate`` (each class flips to the next)."""
    c, rate = check_num_classes(num_classes), check_rate("pairflip", rate)
    T = np.eye(c) * (1.0 - rate)
    T[np.arange(c), (np.arange(c) + 1) % c] += rate
    return T


class Pairflip(ClassConditional):
    name = "pairflip"
    code = 2
    order = 20

    def matrix(self, rate: float, num_classes: int) -> np.ndarray:
        return pairflip_matrix(num_classes, rate)
