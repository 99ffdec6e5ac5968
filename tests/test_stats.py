"""lnm.report.stats against scipy and hand-computed examples; graceful degradation."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lnm.report import stats


def test_t_interval_matches_scipy():
    x = [61.0, 64.0, 58.5, 62.5]
    mean, lo, hi = stats.t_interval(x)
    ref = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert mean == pytest.approx(61.5)
    assert (lo, hi) == pytest.approx(ref)
    # by hand: t(0.975, 3) = 3.182446, s = 2.3452, hw = 3.182446 * 2.3452 / 2 = 3.7318
    assert stats.t_halfwidth(np.std(x, ddof=1), 4) == pytest.approx(3.7318, abs=1e-4)


def test_one_seed_has_no_interval():
    assert math.isnan(stats.t_halfwidth(float("nan"), 1))
    mean, lo, hi = stats.t_interval([70.0])
    assert mean == 70.0 and math.isnan(lo) and math.isnan(hi)


def test_binomial_halfwidth():
    assert stats.binomial_halfwidth(50.0, 100) == pytest.approx(100 * 1.959964 * 0.05, rel=1e-6)
    # BreastMNIST: 156 test images at 80 % -> 1.96 * sqrt(.8 * .2 / 156) = 6.28 points
    assert stats.binomial_halfwidth(80.0, 156) == pytest.approx(6.277, abs=1e-3)
    assert stats.binomial_halfwidth(100.0, 156) == 0.0
    assert math.isnan(stats.binomial_halfwidth(float("nan"), 156))


def test_ceiling_fraction():
    assert stats.ceiling_fraction(60.0, 50.0, 90.0) == pytest.approx(0.25)
    assert stats.ceiling_fraction(45.0, 50.0, 90.0) == pytest.approx(-0.125)  # below chance
    assert stats.ceiling_fraction(90.0, 50.0, 90.0) == pytest.approx(1.0)
    assert math.isnan(stats.ceiling_fraction(60.0, 73.0, 67.0))  # CE <= chance
    assert math.isnan(stats.ceiling_fraction(60.0, float("nan"), 90.0))


# Four blocks, three methods, no ties; ranks by hand (1 = best):
#   block: A B C      rank sums A = 5, B = 8, C = 11
#   1:     1 2 3      chi2 = 12 / (N k (k+1)) * sum R^2 - 3 N (k+1)
#   2:     1 3 2           = 12 / 48 * 210 - 48 = 4.5
#   3:     2 1 3      Iman-Davenport F = (N-1) chi2 / (N (k-1) - chi2) = 13.5 / 3.5
#   4:     1 2 3
HAND = pd.DataFrame(
    {"A": [90, 80, 70, 60], "B": [85, 70, 75, 55], "C": [80, 75, 65, 50]}, dtype=float
)


def test_ranks_and_friedman_by_hand_and_scipy():
    assert stats.average_ranks(HAND).to_dict() == {"A": 1.25, "B": 2.0, "C": 2.75}
    res = stats.friedman(HAND)
    assert res["k"] == 3 and res["n"] == 4 and res["note"] == ""
    assert res["statistic"] == pytest.approx(4.5)
    assert res["pvalue"] == pytest.approx(math.exp(-4.5 / 2))  # chi2 with 2 df
    ref = sps.friedmanchisquare(*(HAND[c] for c in HAND))
    assert (res["statistic"], res["pvalue"]) == pytest.approx((ref.statistic, ref.pvalue))
    assert res["iman_davenport"] == pytest.approx(13.5 / 3.5)
    assert res["pvalue_id"] == pytest.approx(sps.f.sf(13.5 / 3.5, 2, 6))


def test_ties_share_the_mean_rank_and_match_scipy():
    m = pd.DataFrame(
        {"A": [90, 80, 70], "B": [80, 80, 60], "C": [80, 70, 70], "D": [10, 20, 30]}, dtype=float
    )
    ranks = stats.block_ranks(m)
    assert ranks.iloc[0].tolist() == [1.0, 2.5, 2.5, 4.0]
    assert ranks.iloc[2].tolist() == [1.5, 3.0, 1.5, 4.0]
    ref = sps.friedmanchisquare(*(m[c] for c in m))  # tie-corrected
    assert stats.friedman(m)["statistic"] == pytest.approx(ref.statistic)


def test_incomplete_blocks_are_dropped():
    m = HAND.copy()
    m.loc[4] = [50.0, np.nan, 40.0]
    assert stats.friedman(m)["n"] == 4
    assert stats.average_ranks(m).to_dict() == {"A": 1.25, "B": 2.0, "C": 2.75}


@pytest.mark.parametrize(
    "k, q",
    [
        (2, 1.960),
        (3, 2.343),
        (4, 2.569),
        (5, 2.728),
        (6, 2.850),
        (7, 2.949),
        (8, 3.031),
        (9, 3.102),
        (10, 3.164),
    ],
)
def test_nemenyi_q_matches_demsar_table(k, q):
    assert stats.nemenyi_q(k) == pytest.approx(q, abs=1e-3)


def test_nemenyi_cd_demsar_example():
    # Demšar (2006), section 3.2.1: four classifiers on 14 data sets -> CD = 1.25 at alpha 0.05
    cd = stats.nemenyi_cd(4, 14)
    assert cd == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 14)), abs=1e-3)
    assert round(cd, 2) == 1.25
    assert math.isnan(stats.nemenyi_cd(1, 10)) and math.isnan(stats.nemenyi_cd(3, 0))


def test_nemenyi_cliques():
    r = pd.Series({"A": 1.0, "B": 1.5, "C": 3.0, "D": 3.2})
    assert stats.nemenyi_cliques(r, 1.0) == [["A", "B"], ["C", "D"]]
    assert stats.nemenyi_cliques(r, 1.6) == [["A", "B"], ["B", "C"], ["C", "D"]]
    assert stats.nemenyi_cliques(r, 2.5) == [["A", "B", "C", "D"]]
    assert stats.nemenyi_cliques(r, 0.1) == []
    assert stats.nemenyi_cliques(r, float("nan")) == []


def test_friedman_degrades_gracefully():
    two = HAND[["A", "B"]]
    assert "needs ≥3 methods" in stats.friedman(two)["note"]
    assert math.isnan(stats.friedman(two)["statistic"])
    one_block = HAND.iloc[:1]
    assert "needs ≥2 cells" in stats.friedman(one_block)["note"]
    assert "needs ≥3 methods" in stats.friedman(HAND[["A"]])["note"]
    tied = pd.DataFrame({"A": [1.0, 2.0], "B": [1.0, 2.0], "C": [1.0, 2.0]})
    assert stats.friedman(tied)["pvalue"] == 1.0


def test_holm():
    assert stats.holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    out = stats.holm([0.02, float("nan"), 0.5])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.5)


def test_wilcoxon_against_ce_matches_scipy():
    rng = np.random.default_rng(0)
    ce = rng.uniform(40, 80, 12)
    m = pd.DataFrame(
        {
            "ce": ce,
            "good": ce + rng.normal(3, 2, 12),
            "same": ce,
            "bad": ce - rng.uniform(0.5, 4, 12),
        }
    )
    m.loc[0, "good"] = m.loc[0, "ce"]  # one tie
    out = stats.wilcoxon_vs(m).set_index("method")
    assert list(out.index) == ["good", "same", "bad"]
    d = (m["good"] - m["ce"]).to_numpy()
    ref = sps.wilcoxon(d, zero_method="wilcox")
    good = out.loc["good"]
    assert good["n_cells"] == 12 and good["ties"] == 1
    assert good["wins"] == int((d > 0).sum()) and good["losses"] == int((d < 0).sum())
    assert good["win_share"] == pytest.approx((d > 0).mean())
    assert (good["statistic"], good["pvalue"]) == pytest.approx((ref.statistic, ref.pvalue))
    assert out.loc["bad", "wins"] == 0 and out.loc["bad", "median_diff"] < 0
    assert out.loc["same", "note"].startswith("n/a") and math.isnan(out.loc["same", "pvalue"])
    p = out["pvalue"].to_numpy()
    assert out["pvalue_holm"].to_numpy() == pytest.approx(stats.holm(p), nan_ok=True)


def test_wilcoxon_degrades_gracefully():
    one = pd.DataFrame({"ce": [50.0], "disc": [60.0]})
    row = stats.wilcoxon_vs(one).iloc[0]
    assert row["note"].startswith("n/a: needs ≥2 cells") and row["win_share"] == 1.0
    assert "no ce runs" in stats.wilcoxon_vs(pd.DataFrame({"disc": [1.0, 2.0]}))["note"][0]
    assert stats.wilcoxon_vs(pd.DataFrame({"ce": [1.0, 2.0]})).empty


def test_variance_components_by_hand():
    # noise seed 0: 10, 12; noise seed 1: 20, 22. Group means 11, 21, grand mean 16.
    # MSW = (1 + 1 + 1 + 1) / (4 - 2) = 2; MSB = 2 (25 + 25) / 1 = 100; n0 = (4 - 8/4) / 1 = 2
    # var_noise = (100 - 2) / 2 = 49, var_train = 2
    vc = stats.variance_components(pd.Series([10.0, 12, 20, 22]), pd.Series([0, 0, 1, 1]))
    assert vc["var_train"] == pytest.approx(2.0) and vc["var_noise"] == pytest.approx(49.0)
    assert vc["share_noise"] == pytest.approx(49 / 51) and vc["note"] == ""
    # unbalanced: n0 = (5 - (9 + 4) / 5) / 1 = 2.4
    vc = stats.variance_components(pd.Series([10.0, 12, 14, 20, 22]), pd.Series([0, 0, 0, 1, 1]))
    msw = (4 + 0 + 4 + 1 + 1) / 3
    grand = 78 / 5
    msb = 3 * (12 - grand) ** 2 + 2 * (21 - grand) ** 2
    assert vc["var_noise"] == pytest.approx((msb - msw) / 2.4)


def test_variance_components_degrade_gracefully():
    one_noise = stats.variance_components(pd.Series([10.0, 12.0]), pd.Series([0, 0]))
    assert one_noise["var_train"] == pytest.approx(2.0) and math.isnan(one_noise["share_noise"])
    assert one_noise["note"] == stats.NEEDS_VARIANCE
    one_seed = stats.variance_components(pd.Series([10.0, 20.0]), pd.Series([0, 1]))
    assert math.isnan(one_seed["var_train"]) and one_seed["note"] == stats.NEEDS_VARIANCE
    flat = stats.variance_components(pd.Series([5.0] * 4), pd.Series([0, 0, 1, 1]))
    assert flat["var_noise"] == 0 and "no spread" in flat["note"]


def test_ceiling_fraction_needs_a_resolved_ceiling():
    # clean CE 6 points above chance, resolved to ±6.4 points: n/a, not a fraction of noise
    assert math.isnan(stats.ceiling_fraction(28.0, 73.1, 79.1, resolution=6.4))
    assert stats.ceiling_fraction(80.0, 50.0, 90.0, resolution=3.0) == pytest.approx(0.75)


def test_rank_groups_letters():
    r = pd.Series({"A": 1.0, "B": 1.5, "C": 3.0, "D": 3.2})
    # A and B lie within the CD of each other, C and D too: two groups
    assert stats.rank_groups(r, 1.0) == {"A": "a", "B": "a", "C": "b", "D": "b"}
    # overlapping groups: B is not separable from A nor from C
    assert stats.rank_groups(r, 1.6) == {"A": "a", "B": "ab", "C": "bc", "D": "c"}
    assert stats.rank_groups(r, 0.1) == {"A": "a", "B": "b", "C": "c", "D": "d"}
    # the Friedman test found nothing (or the CD is n/a): one group, no order
    assert set(stats.rank_groups(r, 0.1, separable=False).values()) == {"a"}
    assert set(stats.rank_groups(r, float("nan")).values()) == {"a"}


def test_rank_groups_of_a_hand_built_matrix():
    """Ten cells in which A > B > C > D every time: Friedman rejects, and the Nemenyi CD
    (2.569·√(4·5/60) = 1.48 ranks) leaves each neighbour pair within one CD of each other."""
    from lnm.report import ranks

    blocks = [("d", "b", "symmetric", 0.1 * i) for i in range(1, 11)]
    cells = pd.DataFrame(
        [
            dict(zip(["dataset", "backbone", "noise", "rate"], b), method=m, mean=v - 3 * j, n=1)
            for b, v in zip(blocks, np.linspace(60, 80, 10))
            for j, m in enumerate(["ce", "sce", "cdr", "disc"])
        ]
    )
    ra = ranks.rank_analysis(cells)
    assert ra["separable"] and ra["cd"] == pytest.approx(2.569 * math.sqrt(20 / 60), abs=1e-3)
    assert ra["groups"] == {"ce": "a", "sce": "ab", "cdr": "bc", "disc": "c"}
    (table,) = ranks.rank_render(ra)
    assert [r[1] for r in table.rows] == ["a", "ab", "bc", "c"]
    assert [b[0] for b in table.bold] == [True, True, False, False]  # sharing a letter with ce
    assert "not separable" in " ".join(table.notes)
    # the same matrix with its order shuffled in every cell: Friedman finds nothing, one group
    rng = np.random.default_rng(1)
    cells["mean"] = (
        cells["mean"].groupby(cells["rate"]).transform(lambda v: rng.permutation(v.to_numpy()))
    )
    shuffled = ranks.rank_analysis(cells)
    assert shuffled["friedman"]["pvalue"] >= 0.05 and not shuffled["separable"]
    assert set(shuffled["groups"].values()) == {"a"}
    assert "every method is in group a" in ranks.groups_text(shuffled)


def test_printed_numbers_round_once():
    from lnm.report.fmt import num, resolved_digits, shown

    assert num(51.55) == "51.5" and shown(51.55) == 51.5  # as printed, not numpy's half-even
    assert round(pd.Series([51.55]).round(1).iloc[0], 1) == 51.6  # what the bug compared
    assert num(-0.001, 2) == "0.00" and num(-0.01, 2) == "-0.01"  # never a "-0.00"
    assert [resolved_digits(h) for h in (4.9, 1.0, 0.6, 0.05, float("nan"))] == [0, 0, 1, 2, 2]
