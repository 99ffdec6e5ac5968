"""``symmetric``: each label flips with probability ε to a uniformly chosen *other* class."""

from __future__ import annotations

import numpy as np

from ..spec import check_num_classes, check_rate
from .base import ClassConditional


def symmetric_matrix(num_classes: int, rate: float) -> np.ndarray:
    """Diagonal ``1 - rate``, off-diagonal ``rate / (C - 1)``: a flip never keeps the class."""
    c, rate = check_num_classes(num_classes), check_rate("symmetric", rate)
    T = np.full((c, c), rate / (c - 1))
    np.fill_diagonal(T, 1.0 - rate)
    return T


class Symmetric(ClassConditional):
    name = "symmetric"
    code = 1
    order = 10

    def matrix(self, rate: float, num_classes: int) -> np.ndarray:
        return symmetric_matrix(num_classes, rate)
