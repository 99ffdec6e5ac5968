"""A training run's start-up: what its process imports and does besides training.

- lnm.train.metrics computes scikit-learn's recall, macro F1, log loss and ROC AUC in numpy, so
  that training never imports scikit-learn: the floats must be scikit-learn's, bit for bit;
- the trainer's per-epoch table (lnm.train.trainer.EpochTable) writes the bytes pandas wrote and
  averages as pandas did;
- a training process imports none of the packages it does not use;
- ``lnm train`` as a program skips the interpreter's teardown: outputs and exit status intact.
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

skm = pytest.importorskip("sklearn.metrics")
pd = pytest.importorskip("pandas")

from lnm.train import metrics as M  # noqa: E402
from tests.conftest import REPO  # noqa: E402


def _sklearn_classification_metrics(probs, labels):
    """classification_metrics as it was written with scikit-learn."""
    num_classes = probs.shape[1]
    pred = probs.argmax(1)
    classes = np.arange(num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recall = skm.recall_score(labels, pred, labels=classes, average=None, zero_division=0)
        present = np.isin(classes, labels)
        uniq = np.unique(labels)
        if len(uniq) < 2:
            auc = float("nan")
        elif num_classes == 2:
            auc = float(skm.roc_auc_score(labels, probs[:, 1]))
        elif len(uniq) < num_classes:
            auc = float(np.mean([skm.roc_auc_score(labels == c, probs[:, c]) for c in uniq]))
        else:
            auc = float(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
        return {
            "acc": 100.0 * float((pred == labels).mean()),
            "balanced_acc": 100.0 * float(recall[present].mean()),
            "macro_f1": 100.0
            * float(skm.f1_score(labels, pred, labels=classes, average="macro", zero_division=0)),
            "auc": auc,
            "ece": M.expected_calibration_error(probs, labels),
            "nll": float(skm.log_loss(labels, np.clip(probs, 1e-12, 1.0), labels=classes)),
            "per_class_recall": (100.0 * recall).tolist(),
        }


def _same(a, b):
    """Equal as floats, bit for bit (NaN equals NaN)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _cases(seed=0, count=400):
    rng = np.random.default_rng(seed)
    for i in range(count):
        c = int(rng.choice([2, 3, 5, 7, 11]))
        n = int(rng.choice([2, 5, 17, 64, 300, 1000]))
        logits = rng.normal(0, rng.choice([0.1, 1, 5, 30]), (n, c))
        if i % 4 == 1:  # heavy ties: few distinct scores
            logits = np.round(logits, 0)
        if i % 4 == 2:  # float32 softmax, as the networks give
            logits = logits.astype(np.float32)
        z = np.asarray(logits, dtype=np.float64)
        probs = np.exp(z - z.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        if i % 5 == 3:  # a collapsed network: one class everywhere
            probs = np.zeros_like(probs)
            probs[:, int(rng.integers(c))] = 1.0
        k = int(rng.integers(1, c + 1)) if i % 3 == 0 else c  # sometimes classes absent
        present = rng.choice(c, size=k, replace=False)
        labels = present[rng.integers(0, k, n)].astype(np.int64)
        yield probs, labels


# ------------------------------------------------ scikit-learn's metrics in numpy
def test_classification_metrics_are_sklearns_bit_for_bit():
    checked = 0
    for probs, labels in _cases():
        ours = M.classification_metrics(probs, labels)
        ref = _sklearn_classification_metrics(probs, labels)
        assert ours.keys() == ref.keys()
        for key in ref:
            assert _same(ours[key], ref[key]), (key, ours[key], ref[key], probs.shape)
        checked += 1
    assert checked == 400


def test_binary_auc_is_sklearns_for_bool_labels_and_float32_scores():
    rng = np.random.default_rng(1)
    for n in (2, 3, 10, 100, 5000):
        for ties in (False, True):
            y = rng.random(n) < rng.uniform(0.05, 0.95)
            if y.all() or not y.any():
                y[0] = not y[0]
            s = rng.random(n).astype(np.float32)
            if ties:
                s = np.round(s * 4) / 4
            assert M.binary_auc(y, s) == skm.roc_auc_score(y, s)
    assert np.isnan(M.binary_auc(np.ones(5, bool), np.arange(5.0)))
    with pytest.raises(ValueError):
        M.binary_auc(np.array([0, 1]), np.array([0.5, np.nan]))


def test_out_of_range_labels_fall_back_to_sklearn():
    probs = np.full((4, 3), 1 / 3)
    labels = np.array([0, 1, 2, 5])  # a label outside 0..C-1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recall, f1 = M.recall_f1(labels, probs.argmax(1), 3)
        ref = skm.recall_score(labels, probs.argmax(1), labels=np.arange(3), average=None,
                               zero_division=0)  # fmt: skip
    assert _same(recall, ref)


def test_non_finite_probabilities_are_refused_as_before():
    probs = np.array([[0.5, 0.5], [np.nan, np.nan], [0.2, 0.8]])
    labels = np.array([0, 1, 1])
    with pytest.raises(ValueError):
        M.classification_metrics(probs, labels)


# ------------------------------------------------ the per-epoch table without pandas
def _histories(seed=0, count=200):
    """Per-epoch rows like the trainer's: an int epoch, floats (NaN, inf, huge, tiny, -0.0),
    keys that appear only in some epochs, a JSON string with commas."""
    rng = np.random.default_rng(seed)
    specials = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e-300, 1e20, 123456789.0]
    for _ in range(count):
        epochs = int(rng.integers(1, 14))
        keys = [f"k{i}" for i in range(int(rng.integers(1, 8)))]
        rows = []
        for e in range(epochs):
            row = {"epoch": e}
            for key in keys:
                if rng.random() < 0.2:
                    continue  # missing in this epoch (a NaN in pandas)
                if rng.random() < 0.15:
                    row[key] = specials[int(rng.integers(len(specials)))]
                elif rng.random() < 0.1:
                    row[key] = int(rng.integers(-5, 100))  # an int among floats
                else:
                    row[key] = float(rng.normal(0, 10.0 ** rng.integers(-6, 6)))
            if rng.random() < 0.9:
                row["test_per_class_recall"] = json.dumps(
                    [round(float(x), 4) for x in rng.random(3)]
                )
            row["seconds"] = float(rng.random())
            rows.append(row)
        yield rows


def test_epoch_table_writes_the_csv_pandas_writes(tmp_path):
    from lnm.train.trainer import EpochTable

    for i, rows in enumerate(_histories()):
        ours, ref = tmp_path / f"ours{i}.csv", tmp_path / f"ref{i}.csv"
        EpochTable(rows).write_csv(ours, drop=["seconds"])
        pd.DataFrame(rows).drop(columns=["seconds"]).to_csv(ref, index=False, float_format="%.6g")
        assert ours.read_bytes() == ref.read_bytes(), rows


def test_epoch_table_falls_back_to_pandas_for_other_value_types(tmp_path):
    from lnm.train.trainer import EpochTable

    rows = [{"epoch": 0, "flag": True, "x": np.float32(0.1), "seconds": 1.0},
            {"epoch": 1, "flag": False, "x": np.float32(0.2), "seconds": 1.0}]  # fmt: skip
    EpochTable(rows).write_csv(tmp_path / "a.csv", drop=["seconds"])
    pd.DataFrame(rows).drop(columns=["seconds"]).to_csv(
        tmp_path / "b.csv", index=False, float_format="%.6g"
    )
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf - inf, in both
def test_last_k_mean_is_pandas_mean():
    from lnm.train.trainer import EpochTable, _last_k_mean

    for rows in _histories(seed=1):
        table, frame = EpochTable(rows), pd.DataFrame(rows)
        assert table.columns == list(frame.columns)
        for col in [*table.columns, "absent"]:
            if col == "test_per_class_recall":
                continue
            for k in (1, 2, 5, 9, 13):
                want = None
                if col in frame:
                    vals = frame[col].iloc[-k:].astype(float)
                    want = None if vals.isna().all() else float(vals.mean())
                got = _last_k_mean(table, col, k)
                assert (got is None and want is None) or _same(got, want), (col, k, got, want)
        if "k0" in frame:
            best = int(frame["k0"].to_numpy().argmax())
            assert int(np.array(table["k0"], dtype=np.float64).argmax()) == best


# ------------------------------------------------ what a training process imports
#: Packages a training run (ResNet-8, a method without a GMM) must never import: they cost
#: seconds of start-up per run and the run does not use them.
NOT_IN_TRAINING = ("sklearn", "scipy", "pandas", "matplotlib", "medmnist", "timm", "torchvision")


def test_a_training_run_imports_no_heavy_package(tmp_path):
    from tests.conftest import TINY_RUN, TINY_SPEC, tiny_problem

    h5, npz = tiny_problem(tmp_path)
    spec = {**TINY_SPEC, **TINY_RUN, "epochs": 1, "last_k": 1, "method": "coteaching"}
    code = f"""
import json, sys
from lnm.train.spec import RunSpec
from lnm.train.trainer import train_run
spec = RunSpec(**json.loads({json.dumps(json.dumps(spec))}))
train_run(spec, {str(h5)!r}, {str(npz)!r}, {str(tmp_path / "run")!r}, device="cpu",
          log=lambda s: None)
heavy = {NOT_IN_TRAINING!r}
bad = sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith("lnm.report"))
print(json.dumps(bad))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [], out.stdout[-2000:]


# ------------------------------------------------ lnm train as a program
def test_lnm_train_as_a_program_writes_its_outputs_and_exit_status(tmp_path):
    """``python -m lnm.cli train`` (the ``lnm`` program) ends without the interpreter's
    teardown: every output is written and verified, the last line reaches stdout, errors give
    exit status 1 and their message."""
    import h5py

    from lnm.checksum import verify, write_sidecar
    from lnm.noise.generate import generate_noise_file
    from tests.conftest import make_h5

    h5 = make_h5(tmp_path / "breastmnist_28.h5", size=28, num_classes=2)
    with h5py.File(h5, "r+") as f:
        f.attrs["dataset"] = "breastmnist"
    write_sidecar(h5)
    npz = tmp_path / "noise.npz"
    generate_noise_file(h5, npz, "symmetric", 0.4, 0)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "size: 28\ndatasets: [breastmnist]\npretrained: false\n"
        "train: {epochs: 1, last_k: 1, batch_size: 32}\n"
    )

    def train(out):
        cmd = [sys.executable, "-m", "lnm.cli", "train", "--config", str(cfg), "--data",
               str(h5), "--noise", str(npz), "--device", "cpu", "--out", str(out)]  # fmt: skip
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)

    p = train(tmp_path / "run")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith(f"{tmp_path / 'run'}: "), p.stdout
    for name in ("metrics.json", "per_epoch.csv", "test_probs.npz"):
        verify(tmp_path / "run" / name)
    (tmp_path / "noise.npz.sha256").write_text("0" * 64 + "  noise.npz\n")  # a tampered record
    p = train(tmp_path / "run2")
    assert p.returncode == 1 and "lnm train: error:" in p.stderr, p.stderr[-2000:]
