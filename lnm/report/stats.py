"""Statistics the LNMBench paper does not report (numpy/scipy/pandas only, no I/O).

All accuracies are in % (0–100). Every function degrades gracefully: where a statistic is not
defined for the data at hand (one seed, one method, one cell) it returns NaN together with a
``note`` saying what it needs, and never raises.

Formulas
--------
* 95 % confidence interval of a cell mean over its ``n`` runs (seeds):
  ``mean ± t_{0.975, n-1} · s / √n`` (``s``: sample std, ddof = 1); needs n ≥ 2.
* Test-set resolution at accuracy ``p`` with ``N`` test images (normal approximation of the
  binomial): ``± z_{0.975} · √(p (1 − p) / N)``; two accuracies closer than this cannot be told
  apart on this test set, whatever the number of seeds.
* Average ranks: per block (a noisy cell: dataset × backbone × pattern × rate) the methods are
  ranked by their mean accuracy over seeds, 1 = best, ties get the mean of their ranks; a
  method's average rank is the mean over blocks.
* Friedman test (scipy.stats.friedmanchisquare, tie-corrected χ² with k − 1 df) over the
  complete blocks; Iman–Davenport ``F = (N − 1) χ² / (N (k − 1) − χ²)`` with (k − 1, (k − 1)(N − 1))
  df alongside. Needs k ≥ 3 methods and N ≥ 2 blocks.
* Nemenyi critical difference: ``CD = q_α √(k (k + 1) / (6 N))`` with
  ``q_α = studentized_range.ppf(1 − α, k, ∞) / √2`` (Demšar 2006, table 5a).
* Wilcoxon signed-rank test of each method against CE over the paired cell means
  (scipy.stats.wilcoxon, two-sided, zero differences dropped), Holm-adjusted over methods.
* Variance split (one-way random-effects ANOVA with the noise seed as the group): with I noise
  seeds, n_i runs under noise seed i, N = Σ n_i,
  ``MSW = Σ_i Σ_j (y_ij − ȳ_i)² / (N − I)`` (training randomness),
  ``MSB = Σ_i n_i (ȳ_i − ȳ)² / (I − 1)``, ``n0 = (N − Σ n_i² / N) / (I − 1)``,
  ``σ²_noise = max(0, (MSB − MSW) / n0)`` (noisy-label draw), ``σ²_train = MSW``.
  Needs ≥ 2 noise seeds with ≥ 2 training seeds each.
* Fraction of the clean ceiling recovered: ``(acc − chance) / (clean CE − chance)``, chance = the
  accuracy of always predicting the test set's majority class; undefined when clean CE is not
  above chance by more than the test-set resolution at clean CE (the denominator would be noise).
* Collapse (a run whose predictions carry no class information): the final test predictions
  ``ŷ`` with their class shares ``q_c`` (of all test images) and the test class counts ``n_c``
  over the C' classes present. A predictor that ignores the image (it draws ``ŷ`` with
  probabilities ``q``, whatever the class) has per-class recall ``Binomial(n_c, q_c) / n_c``, so
  its balanced accuracy has mean ``b₀ = Σ_c q_c / C'`` (= 1/C' when every predicted class is
  present) and variance ``Σ_c q_c (1 − q_c) / n_c / C'²`` (recalls of disjoint images are
  independent; with the prediction counts held fixed, a permutation, the variance is a little
  smaller, so this band is conservative). A run is collapsed when its balanced accuracy is within
  the test set's resolution of b₀: ``|BA − b₀| ≤ z_{0.975} · √(that variance)`` — the test set
  cannot tell its predictions from ones that ignore the image. A constant predictor is the limit
  (variance 0, BA = b₀ exactly). Below the band the predictions follow the class, inverted (a
  model that learned non-identifiable noise): a result, not a collapse.
* Intervals of accuracies are clipped to [0, 100] (:func:`clip_percent`): the true mean accuracy
  lies in [0, 100], so intersecting an interval with it keeps the interval's coverage.
* Rank groups (compact letter display): the methods, in order of average rank, fall into the
  maximal runs whose average ranks lie within the Nemenyi CD of each other; each run gets a
  letter and a method shows the letters of every run it belongs to, so two methods sharing a
  letter are not separable. When the Friedman test finds no difference (p ≥ α) or is n/a,
  every method shares group ``a``: the data cannot order them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats as sps

# the collapse criterion's two numbers, written once (numpy only: lnm train prints it too)
from lnm.collapse import balanced_accuracy, uninformed_balanced  # noqa: F401

ALPHA = 0.05
NEEDS_SEEDS = "n/a: needs ≥2 seeds"
NEEDS_METHODS = "n/a: needs ≥3 methods"
NEEDS_CELLS = "n/a: needs ≥2 cells"
NEEDS_VARIANCE = "n/a: needs ≥2 noise seeds × ≥2 training seeds"


# ---------------------------------------------------------------- per-cell uncertainty


def t_halfwidth(std: float, n: int, level: float = 0.95) -> float:
    """Half-width ``t_{(1+level)/2, n-1} · std / √n`` of a t confidence interval; NaN if n < 2."""
    if n is None or n < 2 or std is None or not np.isfinite(std):
        return float("nan")
    return float(sps.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))


def t_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper) of the t interval over ``values``; bounds NaN with fewer than 2."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    hw = t_halfwidth(float(x.std(ddof=1)) if len(x) > 1 else float("nan"), len(x), level)
    return float(x.mean()), float(x.mean() - hw), float(x.mean() + hw)


def binomial_halfwidth(acc: float, n_test: int, level: float = 0.95) -> float:
    """Test-set resolution in percentage points: ``100 z √(p (1 − p) / N)`` at accuracy ``acc``
    (%), the normal-approximation half-width of a binomial proportion over ``n_test`` images."""
    if not n_test or acc is None or not np.isfinite(acc):
        return float("nan")
    p = min(max(acc / 100.0, 0.0), 1.0)
    z = sps.norm.ppf(0.5 + level / 2)
    return float(100.0 * z * math.sqrt(p * (1 - p) / n_test))


def clip_percent(lo, hi, low: float = 0.0, high: float = 100.0):
    """An interval ``[lo, hi]`` (scalars or arrays) intersected with ``[low, high]`` (percent by
    default): the quantity it covers lies there, so clipping keeps its coverage; NaN stays NaN."""
    return np.clip(lo, low, high), np.clip(hi, low, high)


def ceiling_fraction(acc: float, chance: float, clean: float, resolution: float = 0.0) -> float:
    """``(acc − chance) / (clean − chance)``: 1 = the clean ceiling, 0 = chance, < 0 below chance.
    NaN when the clean run is not above chance by more than ``resolution`` (the test-set
    resolution at the clean accuracy: the ratio would divide by noise)."""
    if any(v is None or not np.isfinite(v) for v in (acc, chance, clean)):
        return float("nan")
    margin = resolution if resolution is not None and np.isfinite(resolution) else 0.0
    if clean - chance <= max(margin, 0.0):
        return float("nan")
    return float((acc - chance) / (clean - chance))


# ---------------------------------------------------------------- ranks, Friedman, Nemenyi


def complete_blocks(matrix: pd.DataFrame) -> pd.DataFrame:
    """Rows (blocks) of a blocks × methods matrix that have a value for every method."""
    return matrix.dropna(axis=0, how="any")


def block_ranks(matrix: pd.DataFrame) -> pd.DataFrame:
    """Per block (row), the rank of each method (column): 1 = highest value, ties averaged."""
    values = -matrix.to_numpy(dtype=float)
    ranks = (
        np.vstack([sps.rankdata(row, method="average") for row in values])
        if len(values)
        else np.empty((0, matrix.shape[1]))
    )
    return pd.DataFrame(ranks, index=matrix.index, columns=matrix.columns)


def average_ranks(matrix: pd.DataFrame) -> pd.Series:
    """Mean rank of each method over the complete blocks of ``matrix`` (1 = best), ascending."""
    full = complete_blocks(matrix)
    return block_ranks(full).mean(axis=0).sort_values(kind="mergesort")


def friedman(matrix: pd.DataFrame) -> dict:
    """Friedman test over the complete blocks of a blocks × methods matrix (higher = better).

    Returns ``k``, ``n`` (blocks), ``statistic`` (χ²_F, tie-corrected, scipy), ``pvalue``,
    ``iman_davenport`` and its ``pvalue_id``, and ``note`` (empty when the test was run)."""
    full = complete_blocks(matrix)
    k, n = full.shape[1], full.shape[0]
    out = {
        "k": k,
        "n": n,
        "statistic": float("nan"),
        "pvalue": float("nan"),
        "iman_davenport": float("nan"),
        "pvalue_id": float("nan"),
        "note": "",
    }
    if k < 3:
        out["note"] = f"{NEEDS_METHODS} (have {k}); see the Wilcoxon comparison against CE"
        return out
    if n < 2:
        out["note"] = f"{NEEDS_CELLS} with every method (have {n})"
        return out
    values = full.to_numpy(dtype=float)
    if np.all(values == values[:, :1]):  # every block all-tied: the statistic is 0/0
        out.update(
            statistic=0.0,
            pvalue=1.0,
            iman_davenport=0.0,
            pvalue_id=1.0,
            note="all methods tied in every cell",
        )
        return out
    res = sps.friedmanchisquare(*values.T)
    chi2, p = float(res.statistic), float(res.pvalue)
    out.update(statistic=chi2, pvalue=p)
    denom = n * (k - 1) - chi2
    if denom > 0:
        ff = (n - 1) * chi2 / denom
        out.update(iman_davenport=ff, pvalue_id=float(sps.f.sf(ff, k - 1, (k - 1) * (n - 1))))
    else:  # every block ranks the methods identically: F = x / 0, no usable p-value
        out.update(
            iman_davenport=float("inf"),
            pvalue_id=float("nan"),
            note="Iman–Davenport F undefined: every cell ranks the methods identically",
        )
    return out


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """Critical value ``q_α`` of the Nemenyi test for ``k`` methods (Demšar 2006, table 5a):
    the studentized range quantile at 1 − α with infinite df, divided by √2."""
    if k < 2:
        return float("nan")
    return float(sps.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """Critical difference of average ranks: ``q_α √(k (k + 1) / (6 n))``; NaN if k < 2 or n < 1."""
    if k < 2 or n < 1:
        return float("nan")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


def nemenyi_cliques(avg_ranks: pd.Series, cd: float) -> list[list[str]]:
    """Maximal groups of methods whose average ranks all lie within ``cd`` of each other (the bars
    of a critical-difference diagram), in rank order; singletons are left out."""
    if not np.isfinite(cd):
        return []
    r = avg_ranks.sort_values(kind="mergesort")
    names, vals = list(r.index), r.to_numpy(dtype=float)
    groups: list[list[str]] = []
    for i in range(len(vals)):
        j = i
        while j + 1 < len(vals) and vals[j + 1] - vals[i] < cd:
            j += 1
        group = names[i : j + 1]
        if len(group) > 1 and not any(set(group) <= set(g) for g in groups):
            groups.append(group)
    return groups


def rank_groups(avg_ranks: pd.Series, cd: float, separable: bool = True) -> dict[str, str]:
    """Compact letter display of ``avg_ranks`` (method -> average rank, 1 = best): the maximal
    runs of methods (in rank order) whose average ranks lie within ``cd`` of each other, singletons
    included, lettered a, b, ... in rank order; method -> its letters ("a", "ab", ...). With
    ``separable`` false (the Friedman test found no difference or is n/a) or no finite ``cd``,
    every method gets "a"."""
    r = avg_ranks.dropna().sort_values(kind="mergesort")
    names, vals = list(r.index), r.to_numpy(dtype=float)
    if not separable or not np.isfinite(cd) or len(names) < 2:
        return dict.fromkeys(names, "a")
    runs: list[tuple[int, int]] = []
    for i in range(len(vals)):
        j = i
        while j + 1 < len(vals) and vals[j + 1] - vals[i] < cd:
            j += 1
        if not runs or j > runs[-1][1]:  # maximal: not inside the previous run
            runs.append((i, j))
    letters = {n: "" for n in names}
    for g, (i, j) in enumerate(runs):
        for n in names[i : j + 1]:
            letters[n] += _letter(g)
    return letters


def _letter(i: int) -> str:
    """a, b, ..., z, then aa, ab, ... (more than 26 groups)."""
    s = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        s = chr(ord("a") + rem) + s
    return s


# ---------------------------------------------------------------- paired comparisons


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaNs stay NaN and do not count as tests)."""
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if not m:
        return out
    order = idx[np.argsort(p[idx], kind="mergesort")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out


def _paired(m: str, d: np.ndarray) -> dict:
    """One method's paired differences ``d`` to the reference over the blocks: wins, ties,
    losses, their mean and median, the Wilcoxon signed-rank test where it can be run."""
    n = len(d)
    nan = float("nan")
    row = {
        "method": m,
        "n_cells": n,
        "wins": int((d > 0).sum()),
        "ties": int((d == 0).sum()),
        "losses": int((d < 0).sum()),
        "win_share": float((d > 0).mean()) if n else nan,
        "mean_diff": float(d.mean()) if n else nan,
        "median_diff": float(np.median(d)) if n else nan,
        "statistic": nan,
        "pvalue": nan,
        "note": "",
    }
    if n < 2:
        row["note"] = f"{NEEDS_CELLS} (have {n})"
    elif not np.any(d != 0):
        row["note"] = "n/a: tied with CE in every cell"
    else:
        res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        row.update(statistic=float(res.statistic), pvalue=float(res.pvalue))
        if np.count_nonzero(d) < 6:
            row["note"] = "fewer than 6 non-tied cells: p cannot fall below 0.05"
    return row


def wilcoxon_vs(matrix: pd.DataFrame, reference: str = "ce") -> pd.DataFrame:
    """Each method (column) against ``reference`` over the blocks where both have a value.

    Columns: ``method, n_cells, wins, ties, losses, win_share`` (share of cells where the method
    is strictly better), ``mean_diff, median_diff`` (method − reference, points), ``statistic``
    (Wilcoxon W), ``pvalue``, ``pvalue_holm`` and ``note``."""
    if reference not in matrix.columns:
        return pd.DataFrame(
            [
                {"method": m, "n_cells": 0, "note": f"n/a: no {reference} runs"}
                for m in matrix.columns
            ]
        )
    rows = []
    for m in matrix.columns:
        if m != reference:
            pair = matrix[[m, reference]].dropna()
            rows.append(_paired(m, (pair[m] - pair[reference]).to_numpy(dtype=float)))
    columns = list(_paired("", np.zeros(0)))  # a row's keys, in order
    out = pd.DataFrame(rows, columns=columns)
    out.insert(out.columns.get_loc("note"), "pvalue_holm", holm(out["pvalue"]))
    return out


# ---------------------------------------------------------------- variance split


def variance_components(values: pd.Series, groups: pd.Series) -> dict:
    """One-way random-effects split of ``values`` by ``groups`` (noise seeds); see the module
    docstring. Returns ``var_noise``, ``var_train``, ``share_noise``, ``share_train``, ``note``."""
    df = pd.DataFrame({"y": np.asarray(values, dtype=float), "g": np.asarray(groups)}).dropna()
    sizes = df.groupby("g")["y"].size()
    out = {
        "n_noise_seeds": int(len(sizes)),
        "n_runs": int(len(df)),
        "var_noise": float("nan"),
        "var_train": float("nan"),
        "share_noise": float("nan"),
        "share_train": float("nan"),
        "note": "",
    }
    if len(sizes) >= 1 and (sizes >= 2).any():
        within = df.groupby("g")["y"].transform("mean")
        dfw = len(df) - len(sizes)
        out["var_train"] = float(((df["y"] - within) ** 2).sum() / dfw)
    if len(sizes) < 2 or (sizes < 2).any():
        out["note"] = NEEDS_VARIANCE
        return out
    n, i = len(df), len(sizes)
    grand = df["y"].mean()
    means = df.groupby("g")["y"].mean()
    msb = float((sizes * (means - grand) ** 2).sum() / (i - 1))
    n0 = (n - float((sizes**2).sum()) / n) / (i - 1)
    var_noise = max(0.0, (msb - out["var_train"]) / n0)
    total = var_noise + out["var_train"]
    out["var_noise"] = var_noise
    if total > 0:
        out["share_noise"], out["share_train"] = var_noise / total, out["var_train"] / total
    else:
        out["note"] = "no spread: every run has the same accuracy"
    return out
