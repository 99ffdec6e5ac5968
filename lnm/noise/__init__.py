"""Synthetic label noise for the train/val splits (test labels are never touched).

Patterns: ``none``, ``symmetric`` (off-diagonal ``rate/(C-1)``, a flip never keeps the class),
``pairflip`` (class ``i`` flips to ``i+1 mod C``) and ``instance`` (Xia et al., NeurIPS 2020,
"Part-dependent label noise"; see :mod:`lnm.noise.instance`).

Noise file / result keys: ``{train,val}_{noisy,clean,is_clean}``, ``realised_rate`` (train),
``realised_rate_val``, ``transition`` (empirical, train), ``nominal_transition`` (the pattern's
matrix; for instance noise the empirical one), ``identifiable``, ``pattern``, ``rate``,
``noise_seed``, ``noisy_val``, ``std``, ``expected_rate`` and, for instance noise,
``{train,val}_flip_prob`` (per-sample flip rate ``q``; 0 for a clean val split).

Draws are nested across rates by default (same noise seed: the flipped set at a lower rate is
contained in the one at a higher rate, instance noise reuses its projection; see
:mod:`lnm.noise.spec`); files made with ``nested=False`` (independent draws per rate) carry the
extra key ``draws = "independent"``, and a file without ``draws`` is nested.
"""
