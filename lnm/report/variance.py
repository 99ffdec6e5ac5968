"""Where the spread of the headline comes from: the noisy-label draw (noise seed) or training
randomness (seed), per cell and pooled per method (``variance.csv``, ``variance.html``).
Formulas: :func:`lnm.report.stats.variance_components`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lnm.grid import CELL_KEYS, HEADLINE
from lnm.report import stats
from lnm.report.fmt import collapse_mark, collapse_note, num, run_flags, sort_rows
from lnm.report.render import Table


def variance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell (noisy or clean): the one-way random-effects split of the headline accuracy
    into the noisy-label draw (noise seed) and training randomness (seed), plus a pooled
    ``all`` row per method and overall (components averaged over cells)."""
    rows = []
    for key, g in run_flags(runs).groupby(CELL_KEYS, sort=False):
        vc = stats.variance_components(g[HEADLINE], g["noise_seed"])
        rows.append(
            {
                **dict(zip(CELL_KEYS, key)),
                "n_seeds": int(g["seed"].nunique()),
                **vc,
                "n_collapsed": int(g["collapsed"].sum()),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = sort_rows(out, ["dataset", "backbone", "noise", "rate", "method"])
    ok = out[out["share_noise"].notna()]
    pooled = []
    for method, g in list(ok.groupby("method", sort=False)) + ([("all", ok)] if len(ok) else []):
        vn, vt = g["var_noise"].mean(), g["var_train"].mean()
        pooled.append(
            {
                "dataset": "all",
                "backbone": "all",
                "noise": "all",
                "rate": float("nan"),
                "method": method,
                "n_noise_seeds": int(g["n_noise_seeds"].max()),
                "n_runs": int(g["n_runs"].sum()),
                "n_seeds": int(g["n_seeds"].max()),
                "var_noise": vn,
                "var_train": vt,
                "share_noise": vn / (vn + vt) if vn + vt > 0 else float("nan"),
                "share_train": vt / (vn + vt) if vn + vt > 0 else float("nan"),
                "note": f"mean components over {len(g)} cells",
                "n_collapsed": int(g["n_collapsed"].sum()),
            }
        )
    return pd.concat([out, pd.DataFrame(pooled)], ignore_index=True) if pooled else out


VARIANCE_NOTE = (
    "σ²_noise = spread of the noisy-label draw (between noise seeds), σ²_train = training "
    "randomness (between seeds with the same noisy labels), from a one-way random-effects ANOVA "
    "per cell: σ²_train = MSW, σ²_noise = max(0, (MSB − MSW)/n0). Shares = component / "
    "(σ²_noise + σ²_train); 'all' rows average the components over cells first. σ = √σ², in "
    "percentage points."
)
VARIANCE_COLUMNS = ["dataset", "backbone", "noise", "rate", "method", "runs", "σ_noise (pp)"]
VARIANCE_COLUMNS += ["σ_train (pp)", "share noise", "share train"]


def _variance_row(r) -> list[str]:
    return [
        r["dataset"],
        r["backbone"],
        r["noise"],
        num(r["rate"], 2) if np.isfinite(r["rate"]) else "all",
        r["method"] + collapse_mark(r.get("n_collapsed", 0), r["n_runs"]),
        str(r["n_runs"]),
        num(math.sqrt(r["var_noise"]), 2),
        num(math.sqrt(r["var_train"]), 2),
        num(100 * r["share_noise"], 0) + " %",
        num(100 * r["share_train"], 0) + " %",
    ]


def variance_render(v: pd.DataFrame, runs: pd.DataFrame) -> list[Table]:
    n_noise, n_seed = runs["noise_seed"].nunique(), runs["seed"].nunique()
    intro = f"This grid has {n_noise} noise seed(s) and {n_seed} training seed(s) per cell."
    notes = [VARIANCE_NOTE]
    ok = v[v["share_noise"].notna()] if len(v) else v
    if ok.empty:
        sd = v["var_train"].dropna() if len(v) else pd.Series(dtype=float)
        why = f" (this grid: {n_noise} noise seed(s), {n_seed} training seed(s))"
        if len(sd):
            median = math.sqrt(float(sd.median()))
            why += f"; training-seed std alone, median over cells: {median:.2f} pp"
        title = "Variance split: noisy-label draw vs training randomness"
        return [Table.note(title, stats.NEEDS_VARIANCE + why, intro=intro, notes=notes)]
    pooled, per_cell = ok[ok["dataset"] == "all"], ok[ok["dataset"] != "all"]
    flagged = collapse_note(run_flags(runs))
    if flagged:
        notes = [*notes, flagged]
    parts = [("per method, averaged over cells", pooled, dict(intro=intro))]
    parts.append(("per cell", per_cell, dict(notes=notes)))
    return [
        Table(
            f"Variance split {what}",
            VARIANCE_COLUMNS,
            [_variance_row(r) for _, r in rows.iterrows()],
            align="lllrlrrrrr",
            **kw,
        )
        for what, rows, kw in parts
    ]
