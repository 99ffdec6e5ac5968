"""The noise-pattern interface: what a pattern says about its labels; :mod:`lnm.noise` does the
rest (argument checks, the random streams, the clean masks, rates and transition matrices, the
noise file).

A pattern is one file in ``lnm/noise/patterns`` with one subclass of :class:`Pattern` (or of
:class:`ClassConditional`, which needs only its :meth:`~ClassConditional.matrix`). Its class
attributes are read statically by :func:`lnm.grid.pattern_catalog`, so the workflow (config
schema, wildcards, the noise rule's inputs and params, the report's order) knows the pattern
without importing numpy; they must be literals (a subclass inherits those of its base):

- ``name``: the pattern's name in the config (``noise.patterns.<name>``), file names and tables;
- ``code``: its index in the seeds of its random streams (:func:`lnm.noise.spec.stream_rng`);
  fixed for ever (a new pattern takes a code no pattern ever had), so every noise file stays
  the same;
- ``order``: display position in tables and figures (default: after the others);
- ``is_clean`` (the clean ceiling, rate 0: one pattern), ``from_data`` (the noisy labels come with
  the data: one pattern), ``needs_images`` (drawn from the images), ``needs_generator`` (drawn
  from the logits of the ``classifier_generator`` rule);
- ``params``: the ``noise.<key>`` config keys that change its labels (each a JSON-schema
  fragment; the config schema declares them, the noise rule's params hold them, so a change
  redraws this pattern's files only). Their values live in ``config.yaml``.

At run time a draw is :meth:`Pattern.prepare` (check the inputs, compute what both splits share)
then :meth:`Pattern.draw` per noised split, each from its own stream of :class:`Draw`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..matrix import flip_with_matrix, is_identifiable
from ..spec import stream_rng


@dataclass
class Draw:
    """What one draw of noisy labels is made from (built by
    :func:`lnm.noise.generate.make_noisy_labels`, every argument checked)."""

    pattern: str
    rate: float
    num_classes: int
    noise_seed: int
    std: float  # std of the per-sample flip rate (instance patterns)
    labels: dict  # split -> clean labels (int64)
    noised: tuple  # the splits that get noise: train, and val unless noisy_val is false
    rate_key: float | None = None  # None: nested draws; a rate: it enters every stream's seed
    images: dict | None = None  # split -> (N, H, W[, C]) uint8 (needs_images)
    channel_mean: object = None  # per-channel pixel standardisation (needs_images)
    channel_std: object = None
    logits: dict | None = None  # split -> (N, C) generator logits (needs_generator)

    def rng(self, stream: str) -> np.random.Generator:
        """The generator of ``stream`` (``train``, ``val`` or ``projection``) of this draw."""
        return stream_rng(self.noise_seed, self.pattern, stream, self.rate_key)


class Pattern:
    """A noise pattern (module docstring). Subclasses set ``name`` and ``code`` and implement
    :meth:`draw` (and :meth:`prepare` when both splits share something)."""

    name: str
    code: int
    order = 1_000_000
    is_clean = False
    from_data = False
    needs_images = False
    needs_generator = False
    params = {}
    #: the noise file records each sample's flip probability (``{split}_flip_prob``)
    flip_prob = False

    def matrix(self, rate: float, num_classes: int) -> np.ndarray | None:
        """The class-conditional transition matrix ``T[i, j] = P(noisy j | clean i)``; None for
        a pattern without one (its nominal transition is then the empirical one)."""
        return None

    def identifiable(self, rate: float, num_classes: int) -> bool | None:
        """Whether the clean class stays the most likely noisy label in every row of
        :meth:`matrix` (None without a matrix: the noise file judges the empirical one)."""
        T = self.matrix(rate, num_classes)
        return None if T is None else is_identifiable(T)

    def expected_rate(self, rate: float, std: float) -> float:
        """The expected fraction of flipped labels at nominal ``rate``."""
        return rate

    def prepare(self, draw: Draw):
        """Check the draw's inputs and compute what its splits share; given to :meth:`draw`."""
        return None

    def draw(self, draw: Draw, split: str, shared) -> tuple[np.ndarray, np.ndarray | None]:
        """The noisy labels of ``split`` (int64) and, for ``flip_prob`` patterns, each sample's
        flip probability (else None)."""
        raise NotImplementedError


class ClassConditional(Pattern):
    """Noise with a transition matrix: each noisy label is drawn from row ``T[y]`` of
    :meth:`matrix` (one uniform per sample from the split's stream; the flips are nested across
    rates when the off-diagonal mass grows with the rate, see :mod:`lnm.noise.spec`)."""

    def matrix(self, rate: float, num_classes: int) -> np.ndarray:
        raise NotImplementedError

    def prepare(self, draw: Draw) -> np.ndarray:
        return self.matrix(draw.rate, draw.num_classes)

    def draw(self, draw: Draw, split: str, shared: np.ndarray) -> tuple[np.ndarray, None]:
        return flip_with_matrix(draw.labels[split], shared, draw.rng(split)), None
