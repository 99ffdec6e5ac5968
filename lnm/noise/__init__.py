"""Label noise for the train/val splits (test labels are never touched).

Each pattern is one file in :mod:`lnm.noise.patterns` (its class says what it draws and needs;
:func:`lnm.grid.pattern_catalog` reads the list). Synthetic patterns: ``none``, ``symmetric``
(off-diagonal ``rate/(C-1)``, a flip never keeps the class), ``pairflip`` (class ``i`` flips to
``i+1 mod C``), ``instance`` (Xia et al., NeurIPS 2020, "Part-dependent label noise"; see
:mod:`lnm.noise.instance`) and ``instance_classifier``
(LNMBench's classifier-based instance noise: the same truncated-normal flip rates, flip targets
from a trained generator classifier's softmax over the wrong classes; see
:mod:`lnm.noise.classifier`). Real-world pattern: ``real`` (the noisy labels that come with the
data; see :mod:`lnm.noise.real`).

Noise file / result keys: ``{train,val}_{noisy,clean,is_clean}``, ``realised_rate`` (train),
``realised_rate_val``, ``transition`` (empirical, train), ``nominal_transition`` (the pattern's
matrix; for instance and real noise the empirical one), ``identifiable``, ``pattern``, ``rate``,
``noise_seed``, ``noisy_val``, ``std``, ``expected_rate``, ``has_clean`` / ``val_has_clean``
(whether every train / val sample's clean label is known: always for synthetic noise; where
not, ``{split}_clean`` is -1 for the unknown ones, ``{split}_is_clean`` all False and the
realised rates, ``transition`` and ``expected_rate`` NaN, ``identifiable`` False) and:

- made from a data file (:func:`lnm.noise.generate.generate_noise_file`): ``dataset`` and
  ``data_sha256``, the data file it was drawn on (its consumers refuse another one:
  :func:`lnm.noise.io.check_drawn_on`);
- ``instance``, ``instance_classifier``: ``{train,val}_flip_prob`` (per-sample flip rate ``q``;
  0 for a clean val split);
- ``instance_classifier``: ``generator_sha256`` (the generator's weights file) and
  ``generator_logits_sha256`` (its logits file, which the labels were drawn from);
- ``real`` with annotator votes: ``{split}_agreement`` (per sample, the share of its votes equal
  to its most frequent vote; NaN without votes) and ``annotator_disagreement`` (train:
  1 - mean agreement). ``rate`` is the assumed rate (drawn from nothing).

Draws are nested across rates by default (same noise seed: the flipped set at a lower rate is
contained in the one at a higher rate, instance noise reuses its projection or generator logits;
see :mod:`lnm.noise.spec`); files made with ``nested=False`` (independent draws per rate) carry
the extra key ``draws = "independent"``, and a file without ``draws`` is nested.
"""
