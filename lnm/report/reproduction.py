"""The reproduction stage: our results beside published ones, cell by cell, with a verdict.

Published numbers live as data in ``lnm/report/references/<name>.csv`` (LNMBench's, MedMNIST
v2's; the columns are :data:`COLUMNS`, described in ``references/README.md``); a user adds any
other paper's in the same format (``reproduction.extra`` in the config). Every table is
validated when it is loaded (:func:`load_table`): a bad value is an error naming the file, the
line, the column and what is allowed.

**What is compared.** A published number is compared with ours only when it means the same
thing: the same dataset, noise pattern, rate and method (the *cell*), the same backbone, image
size and epoch budget where the table states them, and the same *kind* of number
(:data:`KIND_TEXT`: e.g. the mean test accuracy of the last 5 epochs is never held against the
test accuracy at the best validation epoch, nor against a mean of the last 8). A published row
whose cell we ran but whose conditions or kind differ is listed as *not compared*, with the
reason, and never gets a verdict.

**Verdicts** (:func:`verdict`), for our mean over the n runs of the cell (training seeds ×
noise seeds) with its 95 % t interval (:func:`lnm.report.stats.t_halfwidth`) and, for test
accuracies, the test-set resolution at our mean (the binomial 95 % half-width
:func:`lnm.report.stats.binomial_halfwidth`, as in ``cells.csv``'s ``test_hw``):

- **agrees**: the published value lies inside our interval (edges included), or the difference
  is smaller than the test-set resolution (the test set cannot tell the two apart);
- **differs**: neither — the published value is outside our interval and the difference is at
  least the resolution;
- **cannot tell**: one run (no interval) and a difference the resolution does not cover.

A *differs* row names the rows of ``docs/deviations.md`` for its method
(:func:`deviation_rows`): where our implementation knowingly differs from the original.

**Ranking** (:func:`ranking_comparison`): for a reference's per-pattern means (dataset ``all``,
the paper's figure), our means over our cells of the pattern (the paper's arithmetic,
:func:`lnm.report.aggregate.ranking`), the two method orders compared by Kendall's τ with its
p-value (:func:`scipy.stats.kendalltau`), and the rank groups our statistics give
(:func:`lnm.report.ranks.rank_analysis`: methods sharing a letter are not separable).

Files (:data:`lnm.grid.TABLES` ``["reproduction"]`` and the figure
:data:`lnm.grid.FIGURES` ``["reproduction"]``), written by :func:`write_reproduction`.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from lnm import grid
from lnm.grid import HEADLINE, RUN_KEYS, ordered
from lnm.report import files, stats
from lnm.report.fmt import COLLAPSED, collapse_mark, num, pval, run_flags, sort_rows
from lnm.report.render import Table, to_html, to_markdown

#: The published tables shipped with the package, one CSV per reference.
REFERENCES_DIR = Path(__file__).resolve().parent / "references"
#: Where the deviations a "differs" row links live (a file of the repository).
DEVIATIONS = grid.PACKAGE.parent / "docs" / "deviations.md"

#: A published number's cell and conditions: rows with the same key and kind are the runs
#: (seeds) of one published number.
KEY = ("reference", "dataset", "pattern", "rate", "method", "backbone", "size", "epochs", "kind")
#: The columns of a reference table, in order (references/README.md says what each holds).
COLUMNS = (*KEY, "seed", "value", "spread", "n", "provenance", "note")
#: The dataset of a row that summarises a noise pattern over the reference's whole grid.
ALL = "all"
#: The pattern of a row that averages the per-pattern means (the paper's "overall").
OVERALL = "overall"
NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")

# ---------------------------------------------------------------- kinds

#: What a number is. ``{k}``: the mean over the last k epochs (any k ≥ 1).
KIND_TEXT = {
    "test_acc_last{k}": "test accuracy (%), mean of the last {k} epochs",
    "test_acc_best_val": "test accuracy (%) at the epoch with the best (noisy) validation accuracy",
    "test_acc_max": "the highest test accuracy (%) over the epochs (selected on the test set)",
    "test_acc_best_val_auc": "test accuracy (%) of the checkpoint with the best validation AUC",
    "auc_last{k}": "test ROC AUC, mean of the last {k} epochs",
    "auc_best_val_auc": "test ROC AUC of the checkpoint with the best validation AUC",
    "clean_precision_last{k}": "clean ratio (%) of the selected training samples, mean of the "
    "last {k} epochs",
    "clean_recall_last{k}": "coverage (%) of the clean training samples, mean of the last {k} "
    "epochs",
    "correction_precision_last{k}": "purified ratio (%) of the relabelled training samples, mean "
    "of the last {k} epochs",
    "clean_precision_final": "clean ratio (%) of the selected training samples at the last epoch",
    "clean_recall_final": "coverage (%) of the clean training samples at the last epoch",
    "correction_precision_final": "purified ratio (%) of the relabelled training samples at the "
    "last epoch",
}
#: Kinds on the unit interval (the others are percentages).
UNIT_KINDS = ("auc_last{k}", "auc_best_val_auc")
#: Kinds that are test accuracies: their test-set resolution is defined.
ACCURACY_KINDS = ("test_acc_last{k}", "test_acc_best_val", "test_acc_max", "test_acc_best_val_auc")
#: Where our value of a kind comes from: (table, column); ``runs`` = runs.csv (per-run
#: last-k means and the best-val accuracy), ``epochs`` = per_epoch.csv (the run's last epoch).
OURS = {
    "test_acc_last{k}": ("runs", HEADLINE),
    "auc_last{k}": ("runs", grid.last_k("auc")),
    "clean_precision_last{k}": ("runs", "clean_ratio"),
    "clean_recall_last{k}": ("runs", "coverage"),
    "correction_precision_last{k}": ("runs", "purified_ratio"),
    "test_acc_best_val": ("runs", "test_acc_best_val"),
    "clean_precision_final": ("epochs", "clean_ratio"),
    "clean_recall_final": ("epochs", "coverage"),
    "correction_precision_final": ("epochs", "purified_ratio"),
}
#: Kinds no result of ours can have, and why.
NO_COUNTERPART = {
    "test_acc_max": "the reference's number is the highest test accuracy over the epochs, "
    "selected on the test set: reported, never compared",
    "test_acc_best_val_auc": "the reference selects its checkpoint by validation AUC; our runs "
    "record the test accuracy at the best validation accuracy and the last-k mean, not this "
    "(benchmarks/reproduce_cell.py measures it)",
    "auc_best_val_auc": "the reference selects its checkpoint by validation AUC; our runs record "
    "the last-k mean AUC, not this (benchmarks/reproduce_cell.py measures it)",
}
_LAST_K = re.compile(r"^([a-z_]+)_last(\d+)$")


def kind_template(kind: str) -> str | None:
    """The :data:`KIND_TEXT` key of ``kind`` (``test_acc_last5`` -> ``test_acc_last{k}``), or
    None when it is not a kind."""
    if kind in KIND_TEXT and "{k}" not in kind:
        return kind
    m = _LAST_K.match(str(kind))
    if m and int(m.group(2)) >= 1 and f"{m.group(1)}_last{{k}}" in KIND_TEXT:
        return f"{m.group(1)}_last{{k}}"
    return None


def kind_text(kind: str) -> str:
    """What a number of ``kind`` is, in words."""
    template = kind_template(kind)
    if template is None:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KIND_TEXT)} (k ≥ 1)")
    m = _LAST_K.match(kind)
    return KIND_TEXT[template].format(k=m.group(2) if m and "{k}" in template else "")


def our_kind(template: str, last_k: int) -> str:
    """The kind our value of ``template`` has, for runs whose headline averages ``last_k``."""
    return template.format(k=int(last_k))


def is_unit(kind: str) -> bool:
    return kind_template(kind) in UNIT_KINDS


def is_accuracy(kind: str) -> bool:
    return kind_template(kind) in ACCURACY_KINDS


# ---------------------------------------------------------------- loading and validation


class ReferenceError(ValueError):
    """A reference table (or the config naming one) is not valid; the message says where."""


def shipped() -> dict[str, Path]:
    """The published tables of the package: name -> path."""
    return {p.stem: p for p in sorted(REFERENCES_DIR.glob("*.csv"))}


def _where(path, line: int, column: str) -> str:
    return f"{path}, line {line}, column {column!r}"


def _int(text: str, path, line: int, column: str, minimum: int) -> int | None:
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ReferenceError(
            f"{_where(path, line, column)}: {text!r} is not allowed; allowed: an integer "
            f"≥ {minimum}, or empty"
        )
    return value


def _float(text: str, path, line: int, column: str, lo: float, hi: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ReferenceError(
            f"{_where(path, line, column)}: {text!r} is not allowed; allowed: {what}"
        )
    return value


def load_table(path: str | os.PathLike, name: str | None = None) -> pd.DataFrame:
    """A reference table, validated: header = :data:`COLUMNS`; one ``reference`` name for all
    rows (``name`` when given: a shipped table's file name); names as ``lnm.grid`` spells them
    (patterns, methods; datasets and backbones lower-case identifiers); a kind of
    :data:`KIND_TEXT`; values in range (percent 0–100, AUC 0–1); either per-seed rows (``n``
    1 or empty, no ``spread``) or one summary row (``seed`` empty) per published number, never
    both, never a seed twice. Returns the rows with typed columns (``rate``, ``size``,
    ``epochs``, ``seed``, ``n``: float, NaN where empty) and ``line`` (the file line)."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"reference table {path} does not exist")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ReferenceError(f"{path}: empty file; the first line must be the header")
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS]
        if missing or extra or len(set(header)) != len(header):
            raise ReferenceError(
                f"{path}, line 1 (header): missing columns {missing}, unknown columns {extra}; "
                f"the columns are: {', '.join(COLUMNS)}"
            )
        rows = []
        for line, fields in enumerate(reader, start=2):
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise ReferenceError(
                    f"{path}, line {line}: {len(fields)} fields, the header has {len(header)}"
                )
            rows.append(_row(dict(zip(header, (f.strip() for f in fields))), path, line))
    if not rows:
        raise ReferenceError(f"{path}: no rows below the header")
    first = name or rows[0]["reference"]
    for r in rows:
        if r["reference"] != first:
            raise ReferenceError(
                f"{_where(path, r['line'], 'reference')}: {r['reference']!r} is not allowed; "
                f"allowed: {first!r} (one reference per table"
                + (", its file name)" if name else ", as on its first row)")
            )
    df = pd.DataFrame(rows, columns=[*COLUMNS, "line"])
    _check_groups(df, path)
    return df


def _checker(r: dict, path, line: int):
    """``bad(column, allowed)``: the error naming a field of the row ``r`` and what is allowed."""

    def bad(column, allowed):
        return ReferenceError(
            f"{_where(path, line, column)}: {r[column]!r} is not allowed; allowed: {allowed}"
        )

    return bad


def _check_names(r: dict, bad) -> None:
    """The names of a row: lower-case names, a known pattern (``overall`` only on a dataset
    ``all`` row), method and kind."""
    for column in ("reference", "dataset", "backbone"):
        if not NAME.match(r[column]):
            raise bad(column, "a lower-case name of letters, digits and _")
    if r["pattern"] not in (*grid.PATTERNS, OVERALL):
        raise bad("pattern", ", ".join((*grid.PATTERNS, OVERALL)))
    if r["pattern"] == OVERALL and r["dataset"] != ALL:
        raise bad("pattern", f"{OVERALL!r} only on a dataset {ALL!r} row")
    if r["method"] not in grid.methods():
        raise bad("method", ", ".join(grid.methods()))
    if kind_template(r["kind"]) is None:
        raise bad("kind", ", ".join(KIND_TEXT) + " ({k}: a number of epochs ≥ 1)")


def _rate(r: dict, path, line: int, bad) -> float:
    """A row's rate: empty (NaN) on a dataset ``all`` row, else in [0, 1), 0 exactly for the
    clean pattern."""
    if r["dataset"] == ALL:
        if r["rate"] != "":
            raise bad("rate", f"empty on a dataset {ALL!r} row (a mean over the pattern's rates)")
        return float("nan")
    rate = _float(r["rate"], path, line, "rate", 0.0, 0.999999, "a rate in [0, 1)")
    if (r["pattern"] == grid.CLEAN) != (rate == 0):
        raise bad("rate", f"0 exactly for pattern {grid.CLEAN!r}, above 0 for a noisy one")
    return rate


def _value_spread(r: dict, path, line: int, bad) -> tuple[float, float]:
    """A row's value (a percentage, or in [0, 1] for a unit kind) and its spread over seeds
    (NaN when empty; only on a summary row)."""
    hi, what = (1.0, "a number in [0, 1]") if is_unit(r["kind"]) else (100.0, "a percentage")
    value = _float(r["value"], path, line, "value", 0.0, hi, what)
    if r["spread"] == "":
        return value, float("nan")
    if r["seed"] != "":
        raise bad("spread", "empty on a per-seed row (the spread is computed over the seeds)")
    return value, _float(r["spread"], path, line, "spread", 0.0, hi, "a std ≥ 0, or empty")


def _row(r: dict, path, line: int) -> dict:
    bad = _checker(r, path, line)
    _check_names(r, bad)
    out = dict(r, line=line)
    out["rate"] = _rate(r, path, line, bad)
    for column, minimum in (("size", 1), ("epochs", 1), ("seed", 0), ("n", 1)):
        value = _int(r[column], path, line, column, minimum)
        out[column] = float("nan") if value is None else float(value)
    out["value"], out["spread"] = _value_spread(r, path, line, bad)
    if r["seed"] != "" and r["n"] not in ("", "1"):
        raise bad("n", "1 or empty on a per-seed row")
    if not r["provenance"]:
        raise bad("provenance", "where the number comes from (a file and line, a table, a figure)")
    return out


def _text(values: pd.Series) -> pd.Series:
    """A column as text for grouping, missing values as "nan" (pandas drops NaN group keys and
    keeps NaN through ``astype(str)``)."""
    return values.map(lambda v: "nan" if pd.isna(v) else str(v)).astype(object)


def _check_groups(df: pd.DataFrame, path) -> None:
    keyed = df.assign(**{c: _text(df[c]) for c in KEY})
    for _, g in keyed.groupby(list(KEY), sort=False, dropna=False):
        seeded = g[g["seed"].notna()]
        if len(seeded) and len(seeded) != len(g):
            line = int(g.loc[g["seed"].isna(), "line"].iloc[0])
            raise ReferenceError(
                f"{_where(path, line, 'seed')}: empty, beside per-seed rows of the same number "
                f"(lines {', '.join(str(x) for x in seeded['line'])}); allowed: per-seed rows or "
                "one summary row per number, not both"
            )
        dup = g[g["seed"].fillna(-1).duplicated(keep="first")]
        if len(dup):
            line, seed = int(dup["line"].iloc[0]), dup["seed"].iloc[0]
            raise ReferenceError(
                f"{_where(path, line, 'seed')}: the same number "
                + (f"for seed {int(seed)} " if pd.notna(seed) else "")
                + f"is already on line {int(g['line'].iloc[0])}; allowed: each seed once"
            )


def load_references(
    names: Sequence[str] = (), extra: Sequence[str | os.PathLike] = ()
) -> pd.DataFrame:
    """The named shipped tables and the ``extra`` ones (paths), validated and stacked, with
    ``source`` (the file). Two tables with the same reference name are an error."""
    available = shipped()
    frames, seen = [], {}
    for name in names:
        if name not in available:
            raise ReferenceError(
                f"reproduction.references: {name!r} is not allowed; allowed: "
                f"{', '.join(available)} (lnm/report/references/*.csv; a table of your own goes "
                "in reproduction.extra)"
            )
        # recorded as the repository spells it: a report names no checkout's absolute path
        source = available[name].relative_to(grid.PACKAGE.parent).as_posix()
        frames.append(load_table(available[name], name).assign(source=source))
    for path in extra:
        frames.append(load_table(path).assign(source=str(path)))
    for df in frames:
        ref, src = df["reference"].iloc[0], df["source"].iloc[0]
        if ref in seen:
            raise ReferenceError(
                f"{src}: reference {ref!r} is already loaded from {seen[ref]}; allowed: one "
                "table per reference name"
            )
        seen[ref] = src
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "line", "source"])
    return pd.concat(frames, ignore_index=True)


def check_config(section: dict) -> pd.DataFrame:
    """Validate the config's ``reproduction`` section (its tables loaded and checked)."""
    return load_references(section.get("references") or [], section.get("extra") or [])


def published(refs: pd.DataFrame) -> pd.DataFrame:
    """One row per published number (:data:`KEY`): per-seed rows become their mean, ``spread``
    = their std (ddof 1; NaN for one seed), ``n`` = their count and ``seeds``; a summary row
    stays as it is. ``provenance``: the rows' provenances, "; "-joined."""
    if refs.empty:
        return pd.DataFrame(columns=[*KEY, "value", "spread", "n", "seeds", "provenance", "note"])
    keyed = refs.assign(**{f"_{c}": _text(refs[c]) for c in KEY})
    out = []
    for _, g in keyed.groupby([f"_{c}" for c in KEY], sort=False, dropna=False):
        first = g.iloc[0]
        row = {c: first[c] for c in KEY}
        if g["seed"].notna().all():
            vals = g["value"].to_numpy(float)
            row.update(
                value=float(vals.mean()),
                spread=float(vals.std(ddof=1)) if len(vals) > 1 else float("nan"),
                n=float(len(vals)),
                seeds=",".join(str(int(s)) for s in sorted(g["seed"])),
            )
        else:
            row.update(value=first["value"], spread=first["spread"], n=first["n"], seeds="")
        row["provenance"] = "; ".join(dict.fromkeys(g["provenance"]))
        row["note"] = first["note"]
        out.append(row)
    return pd.DataFrame(out)


# ---------------------------------------------------------------- our values


def our_values(runs: pd.DataFrame, epochs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every value of ours a published kind can be held against, one row per run and kind:
    :data:`lnm.grid.RUN_KEYS`, ``kind``, ``value``, ``collapsed``, ``num_test``. Last-k kinds
    carry the run's own ``last_k``; ``*_final`` kinds come from ``epochs`` (per_epoch.csv:
    each run's last epoch) when given. NaN values (a method without selection) are left out."""
    runs = run_flags(runs)
    frames = []
    base = [c for c in (*RUN_KEYS, "collapsed", "num_test") if c in runs]
    for template, (table, column) in OURS.items():
        if table == "runs" and column in runs:
            ks = runs["last_k"].astype(int) if "last_k" in runs else None
            if "{k}" in template and ks is None:
                continue
            f = runs[base].copy()
            f["kind"] = [our_kind(template, k) for k in ks] if "{k}" in template else template
            f["value"] = pd.to_numeric(runs[column], errors="coerce")
            frames.append(f)
        elif table == "epochs" and epochs is not None and column in epochs and len(epochs):
            last = epochs.sort_values("epoch").groupby(RUN_KEYS, sort=False).tail(1)
            f = last[RUN_KEYS].merge(runs[base], on=RUN_KEYS, how="inner")
            f = f.merge(last[[*RUN_KEYS, column]], on=RUN_KEYS, how="left")
            f = f.rename(columns={column: "value"}).assign(kind=template)
            f["value"] = pd.to_numeric(f["value"], errors="coerce")
            frames.append(f)
    if not frames:
        return pd.DataFrame(columns=[*base, "kind", "value"])
    out = pd.concat(frames, ignore_index=True)
    return out[out["value"].notna()].reset_index(drop=True)


# ---------------------------------------------------------------- verdicts

AGREES, DIFFERS, CANNOT_TELL = "agrees", "differs", "cannot tell"
VERDICTS = (AGREES, DIFFERS, CANNOT_TELL)


def verdict(
    mean: float, lo: float, hi: float, n: int, value: float, resolution: float
) -> tuple[str, str]:
    """(verdict, why) for our ``mean`` (95 % interval [``lo``, ``hi``] over ``n`` runs; NaN
    bounds with one run) against a published ``value``; ``resolution`` = the test-set
    resolution at our mean (NaN where it is not defined). Inside the interval means
    ``lo <= value <= hi``; below the resolution means ``|mean − value| < resolution``."""
    diff = mean - value
    has_ci = n >= 2 and math.isfinite(lo) and math.isfinite(hi)
    inside = has_ci and lo <= value <= hi
    below = math.isfinite(resolution) and abs(diff) < resolution
    res = f"±{resolution:.2f}" if math.isfinite(resolution) else "n/a"
    if inside:
        return AGREES, f"inside our 95 % CI [{lo:.2f}, {hi:.2f}]"
    if below:
        return AGREES, f"|Δ| = {abs(diff):.2f} < test-set resolution {res}"
    if not has_ci:
        return CANNOT_TELL, (
            f"one run, no interval ({stats.NEEDS_SEEDS}); |Δ| = {abs(diff):.2f}, "
            f"test-set resolution {res}"
        )
    return DIFFERS, (
        f"outside our 95 % CI [{lo:.2f}, {hi:.2f}] and |Δ| = {abs(diff):.2f} ≥ test-set "
        f"resolution {res}"
    )


def _same_rate(a, b) -> bool:
    return bool(np.isclose(float(a), float(b), rtol=0, atol=1e-9))


def _stated(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


#: The columns of ``reproduction.csv``.
RESULT_COLUMNS = [
    *KEY,
    "status",
    "ours_mean",
    "ours_std",
    "ours_lo",
    "ours_hi",
    "ours_n",
    "ours_kind",
    "n_collapsed",
    "num_test",
    "resolution",
    "published",
    "published_spread",
    "published_n",
    "published_seeds",
    "diff",
    "verdict",
    "why",
    "deviations",
    "provenance",
]


def compare(
    runs: pd.DataFrame,
    refs: pd.DataFrame,
    epochs: pd.DataFrame | None = None,
    deviations: str | os.PathLike | None = DEVIATIONS,
) -> pd.DataFrame:
    """Every published number whose cell (dataset, pattern, rate, method) we ran, beside ours
    (:data:`RESULT_COLUMNS`): ``status`` ``compared`` (same backbone, size and epochs where the
    reference states them, same kind: with ``diff`` = ours − published and a :func:`verdict`)
    or ``not compared`` (``why`` says what differs; ``ours_*`` show the closest value we have,
    for context only). Rows of dataset ``all`` are the ranking's (:func:`ranking_comparison`)."""
    pub = published(refs)
    pub = pub[pub["dataset"] != ALL] if len(pub) else pub
    ours = our_values(runs, epochs)
    dev = (
        deviation_rows(deviations)
        if deviations is not None and Path(deviations).is_file()
        else None
    )
    rows = []
    for _, p in pub.iterrows():
        cell = ours[
            (ours["dataset"] == p["dataset"])
            & (ours["noise"] == p["pattern"])
            & (ours["method"] == p["method"])
            & np.array([_same_rate(r, p["rate"]) for r in ours["rate"]], dtype=bool)
        ]
        if cell.empty:
            continue
        for (backbone, size, n_epochs), g in cell.groupby(["backbone", "size", "epochs"]):
            rows.append(_compare_one(p, g, backbone, size, n_epochs, dev))
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    if out.empty:
        return out
    # a published number compared with some of our runs is not also listed as "not compared"
    # beside our runs of other backbones, sizes or epochs
    key = pd.DataFrame({c: _text(out[c]) for c in KEY}).apply("|".join, axis=1)
    done = set(key[out["status"] == "compared"])
    out = out[(out["status"] == "compared") | ~key.isin(done)]
    out = sort_rows(out, ["reference", "dataset", "pattern", "rate", "method", "backbone"])
    return out.reset_index(drop=True)


def _measure(kind: str) -> str:
    """What a kind measures, without how it is averaged or selected (``test_acc_last5`` ->
    ``test_acc``)."""
    return re.sub(r"_(last\d+|final|best_val_auc|best_val|max)$", "", str(kind))


def _closest(g: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Our values of the measure ``kind`` measures, for orientation beside a number we do not
    compare: the last-k mean where we have it, else the first kind we have."""
    near = g[[_measure(k) == _measure(kind) for k in g["kind"]]]
    if near.empty:
        return near
    kinds = sorted(
        set(near["kind"]),
        key=lambda k: (kind_template(k) is None or "{k}" not in kind_template(k), k),
    )
    return near[near["kind"] == kinds[0]]


def _differences(p, g: pd.DataFrame, backbone, size, n_epochs) -> list[str]:
    """What keeps the published number ``p`` from being compared with our runs ``g`` of one
    (backbone, size, epochs): backbone, image size, epochs or kind."""
    why = []
    if p["backbone"] != backbone:
        why.append(f"backbone: ours {backbone}, the reference's {p['backbone']}")
    if _stated(p["size"]) and int(p["size"]) != int(size):
        why.append(f"image size: ours {int(size)} px, the reference's {int(p['size'])} px")
    if _stated(p["epochs"]) and int(p["epochs"]) != int(n_epochs):
        why.append(f"epochs: ours {int(n_epochs)}, the reference's {int(p['epochs'])}")
    kind = p["kind"]
    template = kind_template(kind)
    if template in NO_COUNTERPART:
        why.append(f"kind: {NO_COUNTERPART[template]}")
    elif g[g["kind"] == kind].empty:
        have = sorted(set(g["kind"]))
        why.append(
            f"kind: the reference's number is the {kind_text(kind)}; ours for this cell: "
            + (", ".join(f"{k} ({kind_text(k)})" for k in have) if have else "none")
        )
    return why


def _ours(shown: pd.DataFrame, kind: str) -> dict:
    """Our mean of ``shown`` (one kind's values of a cell) with its 95 % CI, its runs, their
    collapses and the test-set resolution at the mean (accuracies only)."""
    vals = shown["value"].to_numpy(float)
    n = len(vals)
    mean = float(vals.mean())
    std = float(vals.std(ddof=1)) if n > 1 else float("nan")
    hw = stats.t_halfwidth(std, n)
    num_test = pd.to_numeric(shown.get("num_test"), errors="coerce")
    n_test = int(num_test.iloc[0]) if num_test is not None and num_test.notna().any() else 0
    return dict(
        ours_kind=shown["kind"].iloc[0],
        ours_mean=mean,
        ours_std=std,
        ours_lo=mean - hw,
        ours_hi=mean + hw,
        ours_n=n,
        n_collapsed=int(shown["collapsed"].sum()) if "collapsed" in shown else 0,
        num_test=n_test or float("nan"),
        resolution=stats.binomial_halfwidth(mean, n_test) if is_accuracy(kind) else math.nan,
    )


def _compare_one(p, g: pd.DataFrame, backbone, size, n_epochs, dev) -> dict:
    """One published number against our runs ``g`` of one (backbone, size, epochs)."""
    why = _differences(p, g, backbone, size, n_epochs)
    same_kind = g[g["kind"] == p["kind"]]
    shown = same_kind if len(same_kind) else _closest(g, p["kind"])
    row = {c: p[c] for c in KEY}
    row.update(
        provenance=p["provenance"],
        published=p["value"],
        published_spread=p["spread"],
        published_n=p["n"],
        published_seeds=p["seeds"],
    )
    if len(shown):
        row.update(_ours(shown, p["kind"]))
    if why:
        row.update(status="not compared", why="; ".join(why), verdict="")
        row["why"] += f" (ours: {backbone}, {int(size)} px, {int(n_epochs)} epochs)"
        return row
    row.update(status="compared", diff=row["ours_mean"] - p["value"])
    v, reason = verdict(
        row["ours_mean"],
        row["ours_lo"],
        row["ours_hi"],
        row["ours_n"],
        p["value"],
        row["resolution"],
    )
    row.update(verdict=v, why=reason)
    if v == DIFFERS:
        row["deviations"] = deviation_link(p["method"], dev)
    return row


# ---------------------------------------------------------------- deviations

#: The names the LNMBench paper and docs/deviations.md use for our methods (besides ours).
PAPER_NAMES = {
    "ce": ("CE", "cross-entropy", "crossentropy"),
    "trevision": ("T-Revision",),
    "volminnet": ("VolMinNet", "volminenet"),
    "sce": ("SCE",),
    "cdr": ("CDR",),
    "coteaching": ("Co-teaching",),
    "coteaching_plus": ("Co-teaching+", "coteaching plus"),
    "codis": ("CoDis",),
    "jocor": ("JoCoR",),
    "disc": ("DISC",),
    "dividemix": ("DivideMix",),
}
#: Groups docs/deviations.md names as one.
FAMILIES = {"coteaching family": ("coteaching", "coteaching_plus", "codis", "jocor")}
_EVERY = {"all", "all methods", "every method", "*"}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower().replace("+", "plus"))


def methods_named(cell: str) -> set[str]:
    """The methods a deviations-table cell names: our names or the paper's (one per token,
    tokens split at commas, slashes, semicolons, parentheses and " and "), a family, or every
    method ("all", "every method")."""
    aliases = {_norm(m): {m} for m in grid.methods()}
    for m, names in PAPER_NAMES.items():
        aliases.update({_norm(n): {m} for n in names})
    aliases.update({_norm(f): set(ms) for f, ms in FAMILIES.items()})
    found: set[str] = set()
    text = re.sub(r"`[^`]*`", " ", cell)  # code spans name functions, not methods
    for token in re.split(r"[,;/()]|\band\b", text):
        t = token.strip()
        if t.lower() in _EVERY:
            return set(grid.methods())
        found |= aliases.get(_norm(t), set())
    return found


def deviation_rows(path: str | os.PathLike | None = DEVIATIONS) -> dict[str, list[int]]:
    """method -> line numbers of the rows of ``docs/deviations.md`` that concern it: every
    Markdown table with a column named ``method`` (any case), each row read by that column
    (:func:`methods_named`). A missing file gives no rows."""
    path = Path(path) if path is not None else None
    if path is None or not path.is_file():
        return {}
    out: dict[str, list[int]] = {}
    col = None
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        s = line.strip()
        if not s.startswith("|"):
            col = None
            continue
        cells = [c.strip() for c in s.strip("|").split("|")]
        if col is None:
            low = [c.lower().strip("*` ") for c in cells]
            col = low.index("method") if "method" in low else -1
            continue
        if col < 0 or set(s) <= set("|-: "):
            continue
        if col < len(cells):
            for m in methods_named(cells[col]):
                out.setdefault(m, []).append(line_no)
    return out


def deviation_link(method: str, rows: dict[str, list[int]] | None) -> str:
    """Where docs/deviations.md lists what could explain a difference for ``method`` (``rows``
    None: the file was not available to this stage)."""
    if rows is None:
        return "docs/deviations.md (not available here): see the method's rows"
    lines = rows.get(method, [])
    if not lines:
        return "docs/deviations.md: no row for this method"
    rows = f"{len(lines)} row" + ("s" if len(lines) > 1 else "")
    return f"docs/deviations.md line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))} ({rows})"


# ---------------------------------------------------------------- ranking


#: The columns of ``reproduction_ranking.csv``.
RANKING_COLUMNS = [
    "reference",
    "pattern",
    "backbone",
    "kind",
    "method",
    "ours",
    "ours_rank",
    "ours_group",
    "ours_cells",
    "published",
    "published_rank",
    "diff",
    "tau",
    "tau_pvalue",
    "n_methods",
    "status",
    "why",
]


def _not_ranked(runs: pd.DataFrame, mine: pd.DataFrame, pattern, backbone, kind) -> str:
    """Why our runs ``mine`` of the pattern and backbone give no counterpart of a reference's
    per-pattern means of ``kind`` (empty: they do)."""
    template = kind_template(kind)
    if mine.empty:
        return (
            f"no noisy run of ours with the reference's backbone {backbone}"
            + (f" and pattern {pattern}" if pattern != OVERALL else "")
            + f" (ours: {', '.join(sorted(set(runs['backbone'])))})"
        )
    if template not in OURS or OURS[template][0] != "runs":
        return f"kind: no per-pattern value of ours is a {kind_text(kind)}"
    if "{k}" in template:
        k = grid.single_last_k(mine["last_k"])
        if our_kind(template, k) != kind:
            return f"kind: the reference's {kind_text(kind)}; ours average the last {k}"
    return ""


def _ranked_rows(base: dict, g: pd.DataFrame, mine: pd.DataFrame, column: str) -> list[dict]:
    """Per method, ours (by the paper's arithmetic) beside the published per-pattern means
    ``g``: both ranks over the methods both have, our rank group, Kendall's τ of the orders."""
    from lnm.report.aggregate import ranking
    from lnm.report.cells import cell_table
    from lnm.report.ranks import rank_analysis

    ours = ranking(mine, metric=column)[base["pattern"]]
    groups = rank_analysis(cell_table(mine))["groups"]
    n_cells = mine.groupby(["dataset", "noise", "rate"]).ngroups
    common = [m for m in ordered(g["method"], grid.methods()) if m in ours.index]
    theirs = g.set_index("method")["value"]
    ours_rank = ours[common].rank(ascending=False, method="average")
    pub_rank = theirs[common].rank(ascending=False, method="average")
    tau = p = float("nan")
    if len(common) >= 2:
        res = sps.kendalltau(ours[common].to_numpy(), theirs[common].to_numpy())
        tau, p = float(res.statistic), float(res.pvalue)
    status = "compared" if len(common) >= 2 else "not compared"
    why = "" if len(common) >= 2 else f"{len(common)} method(s) in common: τ needs ≥ 2"
    nan = float("nan")
    return [
        {
            **base,
            "method": m,
            "ours": float(ours[m]) if m in ours.index else nan,
            "ours_rank": float(ours_rank[m]) if m in common else nan,
            "ours_group": groups.get(m, ""),
            "ours_cells": n_cells,
            "published": float(theirs[m]) if m in theirs.index else nan,
            "published_rank": float(pub_rank[m]) if m in common else nan,
            "diff": (float(ours[m] - theirs[m]) if m in common else nan),
            "tau": tau,
            "tau_pvalue": p,
            "n_methods": len(common),
            "status": status,
            "why": why,
        }
        for m in ordered(set(g["method"]) | set(ours.index), grid.methods())
    ]


def ranking_comparison(runs: pd.DataFrame, refs: pd.DataFrame) -> pd.DataFrame:
    """Per reference, pattern, backbone and kind of its per-pattern means (dataset ``all``):
    per method ours (mean over our cells of the pattern, the paper's arithmetic) and theirs,
    both ranks (1 = best), our rank group, and Kendall's τ (p-value) of the two orders over the
    methods both have; ``status`` ``compared`` or ``not compared`` (``why``: no runs with the
    reference's backbone, another kind, fewer than two common methods)."""
    pub = published(refs)
    pub = pub[pub["dataset"] == ALL] if len(pub) else pub
    out = []
    if pub.empty or runs.empty:
        return pd.DataFrame(out, columns=RANKING_COLUMNS)
    for (ref, pattern, backbone, kind), g in pub.groupby(
        ["reference", "pattern", "backbone", "kind"], sort=False, dropna=False
    ):
        base = dict(reference=ref, pattern=pattern, backbone=backbone, kind=kind)
        mine = runs[(runs["backbone"] == backbone) & (runs["noise"] != grid.CLEAN)]
        if pattern != OVERALL:
            mine = mine[mine["noise"] == pattern]
        why = _not_ranked(runs, mine, pattern, backbone, kind)
        if why:
            out.append({**base, "status": "not compared", "why": why})
        else:
            out += _ranked_rows(base, g, mine, OURS[kind_template(kind)][1])
    return pd.DataFrame(out, columns=RANKING_COLUMNS)


# ---------------------------------------------------------------- rendering

NO_OVERLAP = "No published number for these cells"
VERDICT_NOTE = (
    "Verdict: agrees = the published value lies inside our 95 % CI (mean ± t(0.975, n−1)·s/√n "
    "over the cell's runs, edges included) or the difference is below the test-set resolution "
    "(binomial 95 % half-width at our mean, test accuracies only); differs = neither; cannot "
    "tell = one run (no interval) and a difference the resolution does not cover. Only numbers "
    "of the same kind, backbone, image size and epoch budget are compared."
)


def _fmt(x, kind: str) -> str:
    return num(x, 3 if is_unit(kind) else 2)


def _label(r) -> str:
    rate = "" if pd.isna(r["rate"]) else f" {float(r['rate']):g}"
    return f"{r['dataset']} {r['pattern']}{rate}"


def _compared_row(r) -> list[str]:
    k = r["kind"]
    ci = (
        f"[{_fmt(r['ours_lo'], k)}, {_fmt(r['ours_hi'], k)}]"
        if r["ours_n"] >= 2 and np.isfinite(r["ours_lo"])
        else "(n=1)"
    )
    spread = "" if pd.isna(r["published_spread"]) else f" ± {_fmt(r['published_spread'], k)}"
    pn = "" if pd.isna(r["published_n"]) else f" (n={int(r['published_n'])})"
    return [
        r["reference"],
        _label(r),
        r["method"],
        r["backbone"],
        k,
        _fmt(r["ours_mean"], k) + collapse_mark(r["n_collapsed"], r["ours_n"]) + f" {ci}",
        str(int(r["ours_n"])),
        _fmt(r["published"], k) + spread + pn,
        ("+" if r["diff"] > 0 else "") + _fmt(r["diff"], k),
        "±" + _fmt(r["resolution"], k) if np.isfinite(r["resolution"]) else "–",
        r["verdict"],
        r["deviations"] if isinstance(r["deviations"], str) else "",
    ]


def _compared_table(compared: pd.DataFrame) -> Table:
    """The compared numbers with their verdicts (a differs in bold)."""
    head = ["reference", "cell", "method", "backbone", "kind", "ours (mean [95 % CI])", "n"]
    head += ["published", "Δ", "±test", "verdict", "deviations"]
    rows = [_compared_row(r) for _, r in compared.iterrows()]
    bold = [[False] * 10 + [v == DIFFERS, False] for v in compared["verdict"]]
    counts = compared["verdict"].value_counts()
    intro = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + "."
    notes = [VERDICT_NOTE]
    if compared["n_collapsed"].fillna(0).gt(0).any():
        notes.append(
            f"{COLLAPSED} collapsed runs (⊘k/n: k of our n runs predict one class for every "
            "test image or made no update in most epochs; runs.csv collapsed)."
        )
    notes.append(
        "Deviations: the rows of docs/deviations.md for the method, where our "
        "implementation knowingly differs from the original (a differs row only)."
    )
    return Table(
        "Ours beside the published numbers",
        head,
        rows,
        bold,
        align="llllllrrrrll",
        notes=notes,
        intro=intro,
    )


def _uncompared_table(other: pd.DataFrame) -> Table:
    """The published numbers of our cells that measure something else, and why."""
    rows = [
        [
            r["reference"],
            _label(r),
            r["method"],
            r["backbone"],
            r["kind"],
            _fmt(r["published"], r["kind"]),
            (
                f"{_fmt(r['ours_mean'], r['ours_kind'])} ({r['ours_kind']})"
                if pd.notna(r.get("ours_mean"))
                else "–"
            ),
            r["why"],
        ]
        for _, r in other.iterrows()
    ]
    head = ["reference", "cell", "method", "their backbone", "their kind", "published"]
    return Table(
        "Published numbers of our cells that are not comparable",
        head + ["ours (closest)", "not compared because"],
        rows,
        align="lllllrrl",
        notes=[
            "No verdict and no difference: the two numbers measure different things. "
            "'ours (closest)' is shown for orientation only."
        ],
    )


def render(result: pd.DataFrame, ranking: pd.DataFrame, refs: pd.DataFrame) -> list[Table]:
    """The tables of ``reproduction.md``/``.html``: compared numbers with their verdicts, the
    numbers not compared and why, the rankings, and what each reference table is."""
    names = ", ".join(sorted(set(refs["reference"]))) if len(refs) else "none configured"
    compared = result[result["status"] == "compared"] if len(result) else result
    if len(compared):
        tables = [_compared_table(compared)]
    else:
        none = (
            f"{NO_OVERLAP} (references: {names}; every published row differs from our runs in "
            "its cell, backbone, image size, epochs or kind; see below)."
        )
        tables = [Table.note("Ours beside the published numbers", none)]
    other = result[result["status"] == "not compared"] if len(result) else result
    if len(other):
        tables.append(_uncompared_table(other))
    tables += _ranking_tables(ranking)
    if len(refs):
        tables.append(_reference_table(refs))
    return tables


RANKING_NOTES = [
    "Ours = the mean of our runs over the pattern's cells (the paper's arithmetic; overall = the "
    "mean of the pattern means), on our grid, which need not be the paper's: compare the orders "
    "(τ), not the levels.",
    "Our group: methods sharing a letter are not separable by our rank statistics (Friedman, "
    "Nemenyi; statistics.md), so a swap inside a group is not a disagreement.",
]


def _ranking_table(title: str, g: pd.DataFrame, kind: str) -> Table:
    """One reference's ranking of a pattern beside ours, with Kendall's τ of the orders."""
    g = g.sort_values(["ours_rank", "published_rank"], na_position="last")
    rows = [
        [
            r["method"],
            _fmt(r["ours"], kind),
            num(r["ours_rank"], 1),
            r["ours_group"] or "–",
            _fmt(r["published"], kind),
            num(r["published_rank"], 1),
            ("+" if r["diff"] > 0 else "") + _fmt(r["diff"], kind),
        ]
        for _, r in g.iterrows()
    ]
    first = g.iloc[0]
    tau = (
        f"Kendall τ = {first['tau']:.2f} (p = {pval(first['tau_pvalue'])}) over "
        f"{int(first['n_methods'])} methods"
        if np.isfinite(first["tau"])
        else f"Kendall τ n/a: {first['why']}"
    )
    return Table(
        title,
        ["method", "ours", "our rank", "our group", "published", "their rank", "Δ"],
        rows,
        align="lrrlrrr",
        intro=tau + f"; ours over {int(first['ours_cells'])} noisy cells.",
        notes=RANKING_NOTES,
    )


def _ranking_tables(ranking: pd.DataFrame) -> list[Table]:
    out = []
    if ranking.empty:
        return out
    for (ref, pattern, backbone, kind), g in ranking.groupby(
        ["reference", "pattern", "backbone", "kind"], sort=False
    ):
        title = f"Method ranking, {pattern}: ours vs {ref} ({backbone}, {kind})"
        if (g["status"] == "not compared").all() and g["method"].isna().all():
            out.append(Table.note(title, f"Not compared: {g['why'].iloc[0]}."))
        else:
            out.append(_ranking_table(title, g, kind))
    return out


def _reference_table(refs: pd.DataFrame) -> Table:
    rows = []
    for ref, g in refs.groupby("reference", sort=False):
        kinds = sorted(set(g["kind"]))
        rows.append(
            [
                ref,
                str(len(g)),
                ", ".join(sorted(set(g["dataset"]))),
                "; ".join(f"{k}: {kind_text(k)}" for k in kinds),
                str(g["source"].iloc[0]) if "source" in g else "",
            ]
        )
    return Table(
        "Reference tables",
        ["reference", "rows", "datasets", "kinds", "file"],
        rows,
        align="lrlll",
        notes=["Every row has its provenance (file and line, table or figure): reproduction.csv."],
    )


# ---------------------------------------------------------------- figure

FIGSIZE = (11.0, 5.5)  # inches -> 1320 x 660 px
_VERDICT_COLOR = {AGREES: "#2ca02c", DIFFERS: "#d62728", CANNOT_TELL: "#7f7f7f"}


def _no_overlap(fig, result: pd.DataFrame) -> None:
    """The figure's only text when nothing is compared: why."""
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    shown = len(result)
    ax.text(
        0.5,
        0.5,
        f"{NO_OVERLAP}.\n"
        + (
            f"{shown} published number(s) of our cells differ in backbone, size, epochs or "
            "kind (reproduction.html lists them)."
            if shown
            else "No published row matches a cell (dataset, pattern, rate, method) we ran."
        ),
        ha="center",
        va="center",
        fontsize=12,
        wrap=True,
    )
    fig.suptitle("Ours vs published")


def _kind_panel(ax, d: pd.DataFrame, kind: str) -> None:
    """Ours against the published numbers ``d`` of one kind, coloured by verdict."""
    from lnm.report.figures import COLLAPSE_STYLE

    x, y = d["published"].to_numpy(float), d["ours_mean"].to_numpy(float)
    err = np.where(d["ours_n"] >= 2, (d["ours_hi"] - d["ours_mean"]).to_numpy(float), 0.0)
    err = np.nan_to_num(err)
    for v, color in _VERDICT_COLOR.items():
        sel = (d["verdict"] == v).to_numpy()
        if sel.any():
            ax.errorbar(
                x[sel],
                y[sel],
                yerr=err[sel],
                fmt="o",
                color=color,
                ms=6,
                capsize=3,
                lw=1.2,
                label=v,
            )
    coll = (d["n_collapsed"].fillna(0) > 0).to_numpy()
    if coll.any():
        ax.plot(x[coll], y[coll], **COLLAPSE_STYLE)
    lo = float(np.nanmin(np.concatenate([x, y - err])))
    hi = float(np.nanmax(np.concatenate([x, y + err])))
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    lim = (lo - pad, hi + pad)
    ax.plot(lim, lim, color="0.4", ls="--", lw=1)
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"published ({kind})")
    ax.set_ylabel("ours (mean, 95 % CI)")
    ax.set_title(kind_text(kind), fontsize=9)


def figure(result: pd.DataFrame):
    """Ours (y, with the 95 % CI) against the published value (x), one point per compared
    number, one panel per kind, the identity line; colour = verdict, a black × = collapsed
    runs. With nothing compared, the figure says so."""
    from matplotlib.lines import Line2D

    from lnm.report.figures import _figure

    fig = _figure(FIGSIZE)
    compared = result[result["status"] == "compared"] if len(result) else result
    if compared.empty:
        _no_overlap(fig, result)
        return fig
    kinds = list(dict.fromkeys(compared["kind"]))
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds):
        _kind_panel(ax, compared[compared["kind"] == kind], kind)
    handles = [
        Line2D([], [], marker="o", color=c, ls="none", label=v) for v, c in _VERDICT_COLOR.items()
    ]
    handles.append(
        Line2D([], [], marker="X", color="black", ls="none", label=f"{COLLAPSED} collapsed runs")
    )
    handles.append(Line2D([], [], color="0.4", ls="--", label="ours = published"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9)
    fig.suptitle("Ours vs published: one point per published number we can compare")
    return fig


def plot(result: pd.DataFrame, out_png: str | os.PathLike) -> Path:
    from lnm.report.figures import _save

    return _save(figure(result), out_png)


# ---------------------------------------------------------------- the stage


def write_reproduction(
    runs: pd.DataFrame,
    out_dir: str | os.PathLike,
    figure_path: str | os.PathLike,
    references: Sequence[str] = (),
    extra: Iterable[str | os.PathLike] = (),
    epochs: pd.DataFrame | None = None,
    deviations: str | os.PathLike | None = DEVIATIONS,
) -> dict[str, Path]:
    """Every file of ``lnm.grid.TABLES["reproduction"]`` into ``out_dir`` and the figure to
    ``figure_path``; return name -> path."""
    refs = load_references(references, list(extra))
    result = compare(runs, refs, epochs, deviations)
    ranks = ranking_comparison(runs, refs)
    tables = render(result, ranks, refs)
    head = "Reproduction: our results beside the published ones"
    intro = (
        f"References: {', '.join(sorted(set(refs['reference']))) or 'none'}. Only numbers of the "
        "same kind, cell, backbone, image size and epoch budget get a verdict."
    )
    out = files.write_rule_tables(
        "reproduction",
        out_dir,
        {
            "reproduction.csv": files.csv(result, float_format="%.6g"),
            "reproduction_ranking.csv": files.csv(ranks, float_format="%.6g"),
            "reproduction.md": to_markdown(tables, head, intro),
            "reproduction.html": to_html(tables, head, intro),
        },
    )
    plot(result, figure_path)
    return out
