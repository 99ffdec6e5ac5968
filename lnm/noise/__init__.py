"""Synthetic label noise for the train/val splits (test labels are never touched).

Patterns: ``none``, ``symmetric`` (off-diagonal ``rate/(C-1)``, a flip never keeps the class),
``pairflip`` (class ``i`` flips to ``i+1 mod C``) and ``instance`` (Xia et al., NeurIPS 2020,
"Part-dependent label noise"; see :mod:`lnm.noise.instance`).

Noise file / result keys: ``{train,val}_{noisy,clean,is_clean}``, ``realised_rate`` (train),
``realised_rate_val``, ``transition`` (empirical, train), ``nominal_transition`` (the pattern's
matrix; for instance noise the empirical one), ``identifiable``, ``pattern``, ``rate``,
``noise_seed``, ``noisy_val``, ``std``, ``expected_rate`` and, for instance noise,
``{train,val}_flip_prob`` (per-sample flip rate ``q``; 0 for a clean val split).
"""

from .generate import expected_rate, generate_noise_file, make_noisy_labels, nominal_matrix
from .instance import (
    channel_stats,
    flip_rates,
    instance_noise,
    instance_projection,
    instance_targets,
)
from .io import load_noise, save_noise
from .matrix import (
    empirical_transition,
    flip_with_matrix,
    is_identifiable,
    pairflip_matrix,
    symmetric_matrix,
)
from .spec import PATTERNS, NoiseError

__all__ = [
    "PATTERNS",
    "NoiseError",
    "symmetric_matrix",
    "pairflip_matrix",
    "flip_with_matrix",
    "instance_projection",
    "instance_targets",
    "instance_noise",
    "flip_rates",
    "channel_stats",
    "empirical_transition",
    "is_identifiable",
    "expected_rate",
    "nominal_matrix",
    "make_noisy_labels",
    "generate_noise_file",
    "save_noise",
    "load_noise",
]
