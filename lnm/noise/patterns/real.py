"""``real``: the noisy labels a real-world dataset comes with; nothing is drawn
(:mod:`lnm.noise.real` reads them, with the clean labels where the data has them)."""

from __future__ import annotations

from ..spec import NoiseError
from .base import Draw, Pattern


class Real(Pattern):
    name = "real"
    code = 5
    order = 90
    from_data = True

    def expected_rate(self, rate: float, std: float) -> float:
        return float("nan")  # the data's rate is what it is

    def prepare(self, draw: Draw):
        raise NoiseError(
            f"pattern {self.name!r} draws no labels: its noisy labels come with the data "
            "(lnm.noise.real.real_noise, or generate_noise_file on a real-world HDF5)"
        )
