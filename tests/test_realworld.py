"""Real-world adapters (DRTiD, KaggleDR+, CheXpert, csv), their HDF5 and their errors, on the
format-faithful fixtures of tests/realworld_fixtures.py."""

import json
from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lnm import grid
from lnm.checksum import verify
from lnm.data import realworld as rw
from lnm.data.adapters.base import DUPLICATE_POLICIES
from lnm.data.adapters.chexpert import chexpert_reduce
from lnm.data.adapters.csv import majority_vote
from lnm.data.hdf5 import load_h5, load_image, preprocess_real, write_source_record
from tests.conftest import REPO
from tests.realworld_fixtures import (
    FINDINGS,
    POLICIES,
    append_row,
    copy_pixels,
    read_rows,
    write_chexpert_official,
    write_chexpert_prepared,
    write_csv,
    write_csv_dataset,
    write_drtid,
    write_kaggledr,
)

SPLITS = ("train", "val", "test")
FUNDUS = {"drtid": write_drtid, "kaggledr": write_kaggledr}
CSVS = {
    "drtid": ["final_train.csv", "final_val.csv", "final_test.csv"],
    "kaggledr": ["kaggle_train.csv", "kaggle_val.csv", "golden.csv"],
}


@pytest.fixture(scope="module")
def drtid(tmp_path_factory):
    return write_drtid(tmp_path_factory.mktemp("drtid") / "drtid")


@pytest.fixture(scope="module")
def chexpert(tmp_path_factory):
    return write_chexpert_official(tmp_path_factory.mktemp("chexpert"))


def _patient(path) -> str:
    return next(p for p in str(path).split("/") if p.startswith("patient"))


# ------------------------------------------------------------------------------------ fundus


@pytest.mark.parametrize("adapter", ["drtid", "kaggledr"])
def test_fundus_adapters_read_noisy_clean_and_expert_labels(tmp_path, adapter):
    fx = FUNDUS[adapter](tmp_path / adapter)
    csvs = rw.check_layout(adapter, fx.root, {})
    assert [p.name for p in csvs] == CSVS[adapter]
    assert rw.has_clean_train(adapter, {})
    t = rw.read_splits(adapter, fx.root, {})
    assert t.classes == [f"grade {i}" for i in range(5)] and t.num_classes == 5
    for s in SPLITS:
        assert len(t.splits[s]) == len(fx.noisy[s])
        np.testing.assert_array_equal(t.splits[s].given, fx.noisy[s])
        np.testing.assert_array_equal(t.splits[s].clean, fx.clean[s])
        assert t.splits[s].images == fx.images[s]
        assert all(p.is_absolute() for p in t.splits[s].images)
    # the fixture flipped round(0.3 * 40) = 12 train labels; the clean ones are the truth
    assert (t.splits["train"].given != t.splits["train"].clean).sum() == 12
    assert t.has_clean_train and not t.val_has_clean
    assert (t.splits["val"].clean == -1).all()


def test_fundus_val_clean_column_makes_val_clean_labels_known(tmp_path):
    fx = write_drtid(tmp_path / "d")
    df = pd.read_csv(fx.root / "final_val.csv")
    df["Grade_gt"] = fx.extra["truth"]["val"]
    df.to_csv(fx.root / "final_val.csv", index=False)
    t = rw.read_splits("drtid", fx.root, {})
    assert t.val_has_clean
    np.testing.assert_array_equal(t.splits["val"].clean, fx.extra["truth"]["val"])
    np.testing.assert_array_equal(t.splits["val"].given, fx.noisy["val"])


# ---------------------------------------------------------------------------------- CheXpert


def test_chexpert_reduction_rules():
    v = np.array(
        [
            [1, 0, 0, 0, 0],  # single -> 0
            [0, 0, 0, 0, 1],  # single -> 4
            [1, -1, 0, 0, 0],  # single + uncertain
            [0, -1, 0, 0, 0],  # uncertain only
            [1, 1, 0, 0, 0],  # two positives
            [0, 0, 0, 0, 0],  # none
            [0, -1, -1, 0, 0],  # two uncertain
        ]
    )
    assert chexpert_reduce(v, "zero").tolist() == [0, 4, 0, -1, -1, -1, -1]
    assert chexpert_reduce(v, "one").tolist() == [0, 4, -1, 1, -1, -1, -1]
    assert chexpert_reduce(v, "exclude").tolist() == [0, 4, -1, -1, -1, -1, -1]


@pytest.mark.parametrize("frontal_only", [False, True])
@pytest.mark.parametrize("uncertain", POLICIES)
def test_chexpert_official_reduced_to_five_classes_split_by_patient(
    chexpert, uncertain, frontal_only
):
    opts = {"uncertain": uncertain, "frontal_only": frontal_only}
    assert [p.name for p in rw.check_layout("chexpert", chexpert.root, opts)] == [
        "train.csv",
        "valid.csv",
    ]
    assert not rw.has_clean_train("chexpert", opts)
    t = rw.read_splits("chexpert", chexpert.root, opts)
    assert t.layout == "official" and t.classes == FINDINGS
    want = {
        r["path"]: r["expected"][uncertain]
        for r in chexpert.extra["train_rows"]
        if r["expected"][uncertain] >= 0 and (r["frontal"] or not frontal_only)
    }
    got = {}
    for s in ("train", "val"):
        tab = t.splits[s]
        assert (tab.clean == -1).all() and tab.csv.name == "train.csv"
        assert all(p.is_file() for p in tab.images)
        got |= dict(zip(tab.keys, tab.given.tolist()))
    assert got == want and len(t.splits["train"]) + len(t.splits["val"]) == len(want)
    train_p = {_patient(k) for k in t.splits["train"].keys}
    val_p = {_patient(k) for k in t.splits["val"].keys}
    assert train_p and val_p and not train_p & val_p  # no patient in both
    # five folds over the patients: val is one of them, never more than half
    assert 0 < len(val_p) < len(train_p)
    # test = valid.csv's single-positive rows (radiologist labels), frontal ones if asked
    keep = chexpert.extra["test_frontal"] | (not frontal_only)
    np.testing.assert_array_equal(t.splits["test"].given, chexpert.extra["test_labels"][keep])
    np.testing.assert_array_equal(t.splits["test"].clean, t.splits["test"].given)
    assert t.splits["test"].keys == [p for p, k in zip(chexpert.extra["test_paths"], keep) if k]


def test_chexpert_split_is_seeded_and_stratified(chexpert):
    a = rw.read_splits("chexpert", chexpert.root, {"split_seed": 0})
    b = rw.read_splits("chexpert", chexpert.root, {"split_seed": 0})
    c = rw.read_splits("chexpert", chexpert.root, {"split_seed": 1})
    assert a.splits["val"].keys == b.splits["val"].keys
    assert a.splits["val"].keys != c.splits["val"].keys
    for s in ("train", "val"):  # stratified: every class on both sides
        assert set(a.splits[s].given.tolist()) == set(range(5))
    third = rw.read_splits("chexpert", chexpert.root, {"val_fraction": 1 / 3})
    assert len(third.splits["val"]) > len(a.splits["val"])


def test_chexpert_full_size_folder_and_root_hint(tmp_path):
    fx = write_chexpert_official(tmp_path, small=False, n_patients=12, n_test=8)
    assert fx.root.name == "CheXpert-v1.0"
    t = rw.read_splits("chexpert", fx.root, {})
    assert t.splits["train"].images[0] == tmp_path / t.splits["train"].keys[0]
    with pytest.raises(rw.RealWorldError, match=r"did you mean root: .*CheXpert-v1\.0"):
        rw.check_layout("chexpert", tmp_path, {})


def test_chexpert_prepared_layout(tmp_path):
    fx = write_chexpert_prepared(tmp_path / "Chexpert")
    assert [p.name for p in rw.check_layout("chexpert", fx.root, {})] == [
        "train.csv",
        "val.csv",
        "test.csv",
    ]
    t = rw.read_splits("chexpert", fx.root, {})
    assert t.layout == "prepared" and t.classes == FINDINGS and not t.has_clean_train
    for s in SPLITS:
        np.testing.assert_array_equal(t.splits[s].given, fx.noisy[s])
        np.testing.assert_array_equal(t.splits[s].clean, fx.clean[s])
        assert t.splits[s].images == fx.images[s]


# --------------------------------------------------------------------------------------- csv


def test_csv_adapter_with_clean_column_and_annotators(tmp_path):
    fx = write_csv_dataset(tmp_path / "mine", annotators=3)
    opts = fx.extra["options"]
    assert rw.has_clean_train("csv", opts)
    assert [p.name for p in rw.check_layout("csv", fx.root, opts)] == [
        "train.csv",
        "val.csv",
        "test.csv",
    ]
    t = rw.read_splits("csv", fx.root, opts)
    assert t.classes == ["benign", "malignant", "normal"]
    for s in SPLITS:
        np.testing.assert_array_equal(t.splits[s].given, fx.noisy[s])
        np.testing.assert_array_equal(t.splits[s].clean, fx.clean[s])
        np.testing.assert_array_equal(t.splits[s].annotators, fx.extra["annotators"][s])
        assert t.splits[s].images == fx.images[s]
    assert t.has_clean_train and t.val_has_clean


def test_csv_clean_label_is_the_annotator_majority_ties_to_smallest(tmp_path):
    fx = write_csv_dataset(tmp_path / "m", annotators=3, clean_column=False, label_style="int")
    opts = fx.extra["options"]
    assert rw.has_clean_train("csv", opts)
    t = rw.read_splits("csv", fx.root, opts)
    assert t.classes == ["0", "1", "2"]  # no classes option: the sorted labels seen
    assert "tie" in fx.extra["styles"]["train"]
    for s in ("train", "val"):
        np.testing.assert_array_equal(t.splits[s].clean, fx.clean[s])
    votes = np.array([[1, 0, -1], [2, 2, 0], [-1, -1, 2], [2, 1, 0], [-1, -1, -1]])
    assert majority_vote(votes, 3).tolist() == [0, 2, 2, 0, -1]


def test_csv_without_clean_labels_and_class_sets(tmp_path):
    fx = write_csv_dataset(tmp_path / "m", annotators=0, clean_column=False)
    opts = fx.extra["options"] | {"classes": None}
    assert not rw.has_clean_train("csv", opts)
    t = rw.read_splits("csv", fx.root, opts)
    assert t.classes == ["benign", "malignant", "normal"]  # strings sorted
    assert (t.splits["train"].clean == -1).all() and not t.has_clean_train
    assert t.splits["train"].annotators is None
    np.testing.assert_array_equal(t.splits["test"].clean, fx.noisy["test"])
    # integers sort numerically and are indexed by their position; 3.0 is the integer 3
    for s, labels in (("train", [10, 2, 1, 2]), ("val", ["3.0", 1]), ("test", [10, 2])):
        df = pd.read_csv(fx.root / f"{s}.csv").iloc[: len(labels)]
        df["label"] = labels
        df.to_csv(fx.root / f"{s}.csv", index=False)
    t = rw.read_splits("csv", fx.root, opts)
    assert t.classes == ["1", "2", "3", "10"]
    assert t.splits["train"].given.tolist() == [3, 1, 0, 1]
    assert t.splits["val"].given.tolist() == [2, 0]
    # with a classes option, names and indices both work
    t = rw.read_splits("csv", fx.root, opts | {"classes": ["a", "b", "c", "10"]})
    assert t.splits["train"].given.tolist() == [3, 2, 1, 2]


# ------------------------------------------------------------------------------------- HDF5


def _pil(path, size):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))


def test_preprocess_real_writes_the_layout(tmp_path, drtid):
    rec = write_source_record("drtid", drtid.root, {}, tmp_path / "src.json")
    text = (tmp_path / "src.json").read_text()
    assert str(drtid.root) not in text and str(tmp_path) not in text  # no absolute path
    assert verify(tmp_path / "src.json")
    assert [f["name"] for f in rec["files"]] == CSVS["drtid"]
    assert [f["rows"] for f in rec["files"]] == [40, 12, 20]
    assert rec["has_clean_train"] and not rec["val_has_clean"] and rec["num_classes"] == 5
    logs = []
    out = tmp_path / "drtid_16.h5"
    preprocess_real(tmp_path / "src.json", drtid.root, {}, out, 16, log=logs.append)
    assert any("train: 40/40 images (100 %)" in m for m in logs)
    with h5py.File(out, "r") as h5:
        for s, n in zip(SPLITS, (40, 12, 20)):
            d = h5[s]["images"]
            assert d.shape == (n, 16, 16, 3) and d.dtype == np.uint8
            assert d.chunks == (1, 16, 16, 3) and d.compression == "lzf"
            assert h5[s]["labels"].dtype == np.int64
            assert ("noisy_labels" in h5[s]) == (s != "test") and "annotators" not in h5[s]
        a = dict(h5.attrs)
        assert a["source"] == "drtid" and a["real_world"] and a["dataset"] == "drtid"
        assert a["source_md5"] == "" and a["source_sha256"] == verify(tmp_path / "src.json")
        assert a["n_channels"] == 3 and a["n_classes"] == 5 and a["size"] == 16
        assert json.loads(a["classes"]) == drtid.classes
        train = h5["train"]["images"][()].reshape(-1, 3) / 255.0
        np.testing.assert_allclose(a["mean"], train.mean(0), rtol=1e-12)
        np.testing.assert_allclose(a["std"], train.std(0), rtol=1e-10)
    ds = load_h5(out, image_splits=("test",))
    assert set(ds.images) == {"test"} and ds.real_world
    for s in SPLITS:
        np.testing.assert_array_equal(ds.labels[s], drtid.clean[s])
    for s in ("train", "val"):
        np.testing.assert_array_equal(ds.noisy_labels[s], drtid.noisy[s])
        np.testing.assert_array_equal(ds.clean_labels[s], drtid.clean[s])
    assert set(ds.noisy_labels) == {"train", "val"} and ds.annotators == {}
    for i in (0, 7, 19):  # LNMBench's eval resize: PIL RGB, bilinear
        np.testing.assert_array_equal(ds.images["test"][i], _pil(drtid.images["test"][i], 16))
    # in CSV order whatever the number of threads: identical bytes
    out3 = tmp_path / "drtid_16_w3.h5"
    preprocess_real(tmp_path / "src.json", drtid.root, {}, out3, 16, workers=3, log=logs.append)
    assert out3.read_bytes() == out.read_bytes()


def test_preprocess_real_chexpert_and_csv_extras(tmp_path, chexpert):
    write_source_record("chexpert", chexpert.root, {}, tmp_path / "c.json")
    preprocess_real(tmp_path / "c.json", chexpert.root, {}, tmp_path / "c.h5", 16, log=str)
    ds = load_h5(tmp_path / "c.h5", image_splits=())
    assert ds.images == {} and not ds.attrs["has_clean_train"]
    assert (ds.labels["train"] == -1).all() and (ds.labels["val"] == -1).all()
    assert (ds.labels["test"] >= 0).all() and ds.attrs["classes"] == FINDINGS
    fx = write_csv_dataset(tmp_path / "m", annotators=3, clean_column=False)
    opts = fx.extra["options"]
    write_source_record("csv", fx.root, opts, tmp_path / "m.json")
    preprocess_real(tmp_path / "m.json", fx.root, opts, tmp_path / "m.h5", 16, log=str)
    ds = load_h5(tmp_path / "m.h5", image_splits=())
    for s in SPLITS:
        np.testing.assert_array_equal(ds.annotators[s], fx.extra["annotators"][s])
    np.testing.assert_array_equal(ds.labels["train"], fx.clean["train"])
    assert ds.attrs["task"] == "multi-class" and ds.attrs["source"] == "csv"


def test_medmnist_files_load_with_defaults(tiny_h5):
    ds = load_h5(tiny_h5)
    assert ds.attrs["source"] == "medmnist" and not ds.real_world
    assert ds.clean_labels == {} and ds.noisy_labels == {} and ds.annotators == {}


def test_large_jpegs_are_drafted_then_resized(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    x = np.stack([xx, yy, (xx + yy) // 2], -1) + rng.integers(0, 20, (256, 256, 3))
    Image.fromarray(x.clip(0, 255).astype(np.uint8)).save(tmp_path / "a.jpg", quality=95)
    got = load_image(tmp_path / "a.jpg", 32)
    with Image.open(tmp_path / "a.jpg") as img:
        img.draft(None, (64, 64))  # 256 // 64 = 4: decoded at 64 px
        assert img.size == (64, 64)
        want = np.asarray(img.convert("RGB").resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(got, want)
    full = load_image(tmp_path / "a.jpg", 32, draft=False)
    np.testing.assert_array_equal(full, _pil(tmp_path / "a.jpg", 32))
    assert np.abs(full.astype(int) - got.astype(int)).mean() < 3  # a few grey levels


# ------------------------------------------------------------------------------------ errors


def test_missing_root_and_csv_fail_at_parse_time_with_the_layout(tmp_path):
    with pytest.raises(rw.RealWorldError) as err:
        rw.check_layout("drtid", tmp_path / "nowhere", {})
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "does not exist" in msg
    assert "final_train.csv" in msg and "image/newall_/<image_name>.jpg" in msg
    fx = write_drtid(tmp_path / "d", n=(6, 3, 3))
    (fx.root / "final_val.csv").unlink()
    with pytest.raises(rw.RealWorldError, match=r"missing .*final_val\.csv.*must hold"):
        rw.check_layout("drtid", fx.root, {})
    with pytest.raises(rw.RealWorldError, match=r"train\.csv does not exist"):
        rw.check_layout("chexpert", tmp_path / "d", {})


@pytest.mark.parametrize(
    "adapter, options, match",
    [
        ("drtid", {"size": 3}, r"unknown option\(s\) size; allowed: duplicates$"),
        ("kaggledr", {"duplicates": "keep"}, r"'duplicates' = 'keep': allowed: refuse"),
        ("chexpert", {"uncertain": "maybe"}, r"'uncertain' = 'maybe': allowed: zero"),
        ("chexpert", {"val_fraction": 0.7}, r"'val_fraction' = 0\.7: .*\(0, 0\.5\]"),
        ("chexpert", {"frontal_only": "no"}, r"'frontal_only' = 'no': must be true or false"),
        ("chexpert", {"seed": 1}, r"unknown option\(s\) seed; allowed: val_fraction"),
        ("csv", {"image_column": "p"}, r"'label_column' = None"),
        ("csv", {"image_column": "p", "label_column": "p"}, r"'p' more than once"),
        (
            "csv",
            {"image_column": "p", "label_column": "l", "splits": {"train": "a.csv"}},
            r"'splits'.*all three",
        ),
        ("csv", {"image_column": "p", "label_column": "l", "classes": ["a"]}, r"at least two"),
        ("nope", {}, r"unknown real-world adapter 'nope'; allowed: drtid"),
    ],
)
def test_bad_options_name_the_key_and_what_is_allowed(tmp_path, adapter, options, match):
    with pytest.raises(rw.RealWorldError, match=match):
        rw.check_layout(adapter, tmp_path, options)


def _edit(path, row, col, value):
    """Set data row ``row`` (0-based) of column ``col``; it is line ``row + 2`` of the file."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row, col] = value
    df.to_csv(path, index=False)


@pytest.mark.parametrize(
    "col, value, match",
    [
        ("Grade", "7", r"final_train\.csv, row 5 \(header = row 1\), column 'Grade': unknown label '7'; allowed: integers 0\.\.4"),
        ("Grade", "", r"row 5 .*column 'Grade': blank label ''"),
        ("Grade", "2.5", r"row 5 .*unknown label '2\.5'"),
        ("Grade_gt", "x", r"row 5 .*column 'Grade_gt': unknown label 'x'"),
    ],
)  # fmt: skip
def test_bad_label_names_file_row_and_value(tmp_path, col, value, match):
    fx = write_drtid(tmp_path / "d", n=(8, 3, 3))
    _edit(fx.root / "final_train.csv", 3, col, value)
    with pytest.raises(rw.RealWorldError, match=match):
        rw.read_splits("drtid", fx.root, {})


def test_missing_images_are_listed_with_rows_and_counted(tmp_path):
    fx = write_drtid(tmp_path / "d", n=(8, 3, 3))
    for i in (2, 5):
        fx.images["train"][i].unlink()
    fx.images["test"][0].unlink()
    with pytest.raises(rw.RealWorldError) as err:
        rw.read_splits("drtid", fx.root, {})
    msg = str(err.value)
    assert msg.startswith("3 image file(s)")
    assert f"final_train.csv, row 4 (header = row 1): {fx.images['train'][2]}" in msg
    assert "final_train.csv, row 7" in msg and "final_test.csv, row 2" in msg


def test_csv_unknown_class_and_missing_votes_name_the_row(tmp_path):
    fx = write_csv_dataset(tmp_path / "m", n=(8, 4, 4), clean_column=False)
    opts = fx.extra["options"]
    _edit(fx.root / "val.csv", 2, "label", "tumour")
    with pytest.raises(rw.RealWorldError, match=r"val\.csv, row 4 .*'label': unknown label 'tumour'; allowed: benign, malignant, normal or their indices 0\.\.2"):  # fmt: skip
        rw.read_splits("csv", fx.root, opts)
    _edit(fx.root / "val.csv", 2, "label", "2")
    for c in ("ann1", "ann2", "ann3"):
        _edit(fx.root / "train.csv", 0, c, "")
    with pytest.raises(rw.RealWorldError, match=r"train\.csv, row 2 .*no annotator vote"):
        rw.read_splits("csv", fx.root, opts)


def test_csv_changed_after_the_record_is_refused(tmp_path):
    fx = write_drtid(tmp_path / "d", n=(8, 3, 3))
    write_source_record("drtid", fx.root, {}, tmp_path / "src.json")
    _edit(fx.root / "final_val.csv", 0, "Grade", "0" if fx.noisy["val"][0] else "1")
    with pytest.raises(rw.RealWorldError, match=r"final_val\.csv changed after the source record"):
        preprocess_real(tmp_path / "src.json", fx.root, {}, tmp_path / "o.h5", 16, log=str)
    assert not (tmp_path / "o.h5").exists()
    fx2 = write_chexpert_official(tmp_path / "c", n_patients=12, n_test=8)
    write_source_record("chexpert", fx2.root, {}, tmp_path / "c.json")
    with pytest.raises(rw.RealWorldError, match=r"options .* differ from the source record"):
        preprocess_real(
            tmp_path / "c.json", fx2.root, {"uncertain": "one"}, tmp_path / "o.h5", 16, log=str
        )


# -------------------------------------------------------------------------------- duplicates


@dataclass(frozen=True)
class Layout:
    """How a test adds rows to an adapter's CSVs: the CSV of each split, the image column, where
    a key's image file lies, another spelling of a key naming the same file, the label column of
    train and a fresh key for a copied image."""

    adapter: str
    write: object
    csv: dict
    column: str
    image: object  # (root, key) -> path
    respell: object  # key -> another spelling of the same file
    label: str
    new_key: str


def _in_root(root, key):
    return root / key


def _up_and_back(key):  # a/b/c.png -> a/../a/b/c.png
    first = key.split("/")[0]
    return f"{first}/../{key}"


LAYOUTS = {
    "drtid": Layout(
        "drtid",
        lambda p: write_drtid(p, n=(10, 6, 6)),
        dict(zip(SPLITS, CSVS["drtid"])),
        "image_name",
        lambda root, k: root / "image" / "newall_" / f"{k}.jpg",
        lambda k: f"../newall_/{k}",
        "Grade",
        "copied_image",
    ),
    "kaggledr": Layout(
        "kaggledr",
        lambda p: write_kaggledr(p, n=(10, 6, 6)),
        dict(zip(SPLITS, CSVS["kaggledr"])),
        "image",
        lambda root, k: root / "diabetic-retinopathy-detection" / "image" / f"{k}.jpeg",
        lambda k: f"./../image/{k}",
        "level",
        "77_left",
    ),
    "chexpert": Layout(  # the prepared layout; the official one has its own tests
        "chexpert",
        lambda p: write_chexpert_prepared(p, n=(10, 6, 6)),
        {s: f"{s}.csv" for s in SPLITS},
        "Path",
        _in_root,
        _up_and_back,
        "Label",
        "train/patient_copy/study1/view1_frontal.jpg",
    ),
    "csv": Layout(
        "csv",
        lambda p: write_csv_dataset(p, n=(10, 6, 6)),
        {s: f"{s}.csv" for s in SPLITS},
        "path",
        _in_root,
        lambda k: f"./{_up_and_back(k)}",
        "label",
        "images/elsewhere/copy.png",
    ),
}
PAIRS = [("train", "val"), ("train", "test"), ("val", "test")]


def _setup(tmp_path, name, **options):
    lay = LAYOUTS[name]
    fx = lay.write(tmp_path / name)
    opts = {**fx.extra.get("options", {}), **options}
    return lay, fx, opts


def _key(lay, fx, split, row):
    return read_rows(fx.root / lay.csv[split])[1][row][
        read_rows(fx.root / lay.csv[split])[0].index(lay.column)
    ]


def _where(root, csv_name, line, image):
    return f"{root / csv_name}, row {line} (header = row 1): {image}"


def _other_label(value: str, classes) -> str:
    if value in classes:
        return classes[(classes.index(value) + 1) % len(classes)]
    return str((int(float(value)) + 1) % len(classes))


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", LAYOUTS)
def test_the_same_file_twice_in_a_split_is_refused_naming_both_rows(tmp_path, name, split):
    lay, fx, opts = _setup(tmp_path, name)
    key = _key(lay, fx, split, 1)
    other = lay.respell(key)  # e.g. ../newall_/x or images/../images/x: the same file
    line = append_row(fx.root / lay.csv[split], 1, {lay.column: other})
    with pytest.raises(rw.RealWorldError) as err:
        rw.read_splits(lay.adapter, fx.root, opts)
    msg = str(err.value)
    assert msg.startswith(f"{lay.adapter}: 1 row(s) name the same file as an earlier row")
    assert _where(fx.root, lay.csv[split], line, lay.image(fx.root, other)) in msg
    assert (
        f"is the same file as {_where(fx.root, lay.csv[split], 3, lay.image(fx.root, key))}" in msg
    )
    assert f"twice in {split} with the same labels" in msg and "keep_first" in msg
    # keep_first: the later row is dropped, the rest read as before
    logs = []
    t = rw.read_splits(lay.adapter, fx.root, {**opts, "duplicates": "keep_first"}, log=logs.append)
    tab = t.splits[split]
    assert len(tab) == len(fx.noisy[split]) and tab.lines.tolist() == list(range(2, line))
    np.testing.assert_array_equal(tab.given, fx.noisy[split])
    assert t.dropped == [
        {
            "split": split,
            "csv": lay.csv[split],
            "row": line,
            "image": other,
            "first_csv": lay.csv[split],
            "first_row": 3,
            "first_image": key,
            "same": "file",
        }
    ]
    assert any("keep_first dropped 1 row(s)" in m and f"row {line}" in m for m in logs)


@pytest.mark.parametrize("a, b", PAIRS)
@pytest.mark.parametrize("name", LAYOUTS)
def test_the_same_file_in_two_splits_is_refused_even_with_keep_first(tmp_path, name, a, b):
    lay, fx, opts = _setup(tmp_path, name, duplicates="keep_first")
    key = _key(lay, fx, a, 2)
    line = append_row(fx.root / lay.csv[b], 0, {lay.column: key})
    with pytest.raises(rw.RealWorldError) as err:
        rw.read_splits(lay.adapter, fx.root, opts)
    msg = str(err.value)
    img = lay.image(fx.root, key)
    assert f"{_where(fx.root, lay.csv[b], line, img)}\n    is the same file as " in msg
    assert f"as {_where(fx.root, lay.csv[a], 4, img)}: in {a} and {b}" in msg
    why = {
        ("train", "test"): "test images would train the model",
        ("val", "test"): "the model would be validated on test images",
        ("train", "val"): "validation images would train the model",
    }
    assert why[a, b] in msg


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_same_file_with_different_labels_is_refused_even_with_keep_first(tmp_path, name):
    lay, fx, opts = _setup(tmp_path, name, duplicates="keep_first")
    header, rows = read_rows(fx.root / lay.csv["train"])
    value = rows[1][header.index(lay.label)]
    changed = _other_label(value, fx.classes)
    line = append_row(fx.root / lay.csv["train"], 1, {lay.label: changed})
    with pytest.raises(rw.RealWorldError) as err:
        rw.read_splits(lay.adapter, fx.root, opts)
    msg = str(err.value)
    img = lay.image(fx.root, _key(lay, fx, "train", 1))
    assert f"{_where(fx.root, lay.csv['train'], line, img)}\n    is the same file as " in msg
    named = (lambda v: v) if value in fx.classes else (lambda v: fx.classes[int(float(v))])
    assert "twice in train with different labels (label as given " in msg
    assert f"{named(changed)!r} vs {named(value)!r}" in msg
    with pytest.raises(rw.RealWorldError, match="twice in train with different labels"):
        rw.read_splits(lay.adapter, fx.root, {**opts, "duplicates": "refuse"})


def _preprocess(tmp_path, lay, fx, opts, log=None):
    rec = tmp_path / "src.json"
    write_source_record(lay.adapter, fx.root, opts, rec)
    out = tmp_path / "out.h5"
    preprocess_real(rec, fx.root, opts, out, 16, log=(log or (lambda m: None)))
    return out


def _copy_row_image(lay, fx, split, row, to_split, like):
    """A new file with the pixels of ``split``'s row ``row`` image (other name, for PNGs other
    bytes) and a new row of ``to_split`` (a copy of its row ``like``) naming it."""
    src = lay.image(fx.root, _key(lay, fx, split, row))
    dst = copy_pixels(src, lay.image(fx.root, lay.new_key))
    if src.suffix == ".png":
        assert dst.read_bytes() != src.read_bytes()  # the file bytes differ, the pixels do not
    line = append_row(fx.root / lay.csv[to_split], like, {lay.column: lay.new_key})
    return src, dst, line


@pytest.mark.parametrize("a, b", PAIRS)
@pytest.mark.parametrize("name", LAYOUTS)
def test_the_same_pixels_in_two_splits_are_refused_while_decoding(tmp_path, name, a, b):
    lay, fx, opts = _setup(tmp_path, name, duplicates="keep_first")
    src, dst, line = _copy_row_image(lay, fx, a, 2, b, 0)
    rw.read_splits(lay.adapter, fx.root, opts)  # two files: nothing to see without decoding
    with pytest.raises(rw.RealWorldError) as err:
        _preprocess(tmp_path, lay, fx, opts)
    msg = str(err.value)
    assert msg.startswith(f"{lay.adapter}: 1 row(s) name the same image (identical pixels) as")
    assert f"{_where(fx.root, lay.csv[b], line, dst)}\n    is the same image" in msg
    assert f"as {_where(fx.root, lay.csv[a], 4, src)}: in {a} and {b}" in msg
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_same_pixels_twice_in_a_split_refused_or_kept_first(tmp_path, name):
    lay, fx, opts = _setup(tmp_path, name)
    src, dst, line = _copy_row_image(lay, fx, "train", 3, "train", 3)  # same labels too
    with pytest.raises(rw.RealWorldError) as err:
        _preprocess(tmp_path, lay, fx, opts)
    msg = str(err.value)
    assert f"{_where(fx.root, lay.csv['train'], line, dst)}\n    is the same image" in msg
    assert f"as {_where(fx.root, lay.csv['train'], 5, src)}: twice in train with the same" in msg
    # keep_first: the copy is not written; images, labels and statistics are the CSV's others
    opts["duplicates"] = "keep_first"
    logs = []
    out = _preprocess(tmp_path, lay, fx, opts, log=logs.append)
    ds = load_h5(out)
    n = len(fx.noisy["train"])
    assert ds.images["train"].shape[0] == n == len(ds.noisy_labels["train"])
    np.testing.assert_array_equal(ds.noisy_labels["train"], fx.noisy["train"])
    for i in (0, 3, n - 1):
        np.testing.assert_array_equal(ds.images["train"][i], _pil(fx.images["train"][i], 16))
    train = ds.images["train"].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(ds.attrs["mean"], train.mean(0), rtol=1e-12)
    dropped = json.loads(ds.attrs["duplicates_dropped"])
    assert dropped == [
        {
            "split": "train",
            "csv": lay.csv["train"],
            "row": line,
            "image": lay.new_key,
            "first_csv": lay.csv["train"],
            "first_row": 5,
            "first_image": _key(lay, fx, "train", 3),
            "same": "pixels",
        }
    ]
    assert any("keep_first dropped 1 row(s) naming the same image" in m for m in logs)


def test_the_same_pixels_with_different_labels_are_refused_under_keep_first(tmp_path):
    lay, fx, opts = _setup(tmp_path, "csv", duplicates="keep_first")
    src, dst, line = _copy_row_image(lay, fx, "val", 1, "val", 1)
    header, rows = read_rows(fx.root / "val.csv")
    rows[-1][header.index("ann2")] = _other_label(
        rows[-1][header.index("ann2")] or "benign", fx.classes
    )
    write_csv(fx.root / "val.csv", header, rows)
    with pytest.raises(
        rw.RealWorldError, match=r"twice in val with different labels \(annotator votes"
    ):
        _preprocess(tmp_path, lay, fx, opts)


def test_a_symlink_and_a_grayscale_copy_are_the_same_image(tmp_path):
    lay, fx, opts = _setup(tmp_path, "csv")
    src = fx.images["train"][0]
    (fx.root / "images" / "link.png").symlink_to(src)
    append_row(fx.root / "train.csv", 0, {"path": "images/link.png"})
    with pytest.raises(
        rw.RealWorldError, match=r"row 12 .*link\.png\n    is the same file as .*row 2 "
    ):
        rw.read_splits("csv", fx.root, opts)
    header, rows = read_rows(fx.root / "train.csv")
    write_csv(fx.root / "train.csv", header, rows[:-1])
    # a one-channel PNG whose grey levels equal an RGB PNG's three channels: the same RGB pixels
    with Image.open(src) as img:
        grey = np.asarray(img.convert("L"))
    Image.fromarray(np.stack([grey] * 3, -1)).save(fx.images["test"][2])
    Image.fromarray(grey).save(fx.root / "images" / "grey.png")
    line = append_row(fx.root / "train.csv", 0, {"path": "images/grey.png"})
    with pytest.raises(rw.RealWorldError) as err:
        _preprocess(tmp_path, lay, fx, opts)
    msg = str(err.value)
    assert f"test.csv, row 4 (header = row 1): {fx.images['test'][2]}\n    is the same" in msg
    grey = f"train.csv, row {line} (header = row 1): {fx.root / 'images/grey.png'}"
    assert f"{grey}: in train and test (test images would train the model)" in msg


def test_chexpert_official_duplicates_within_train_csv_and_into_valid_csv(tmp_path):
    fx = write_chexpert_official(tmp_path, n_patients=24, n_test=12)
    train_csv, valid_csv = fx.root / "train.csv", fx.root / "valid.csv"
    rows = fx.extra["train_rows"]
    r = next(i for i, row in enumerate(rows) if row["expected"]["zero"] >= 0)
    line = append_row(train_csv, r, {})  # the same row twice: one patient, so one split
    with pytest.raises(rw.RealWorldError) as err:
        rw.read_splits("chexpert", fx.root, {})
    msg = str(err.value)
    image = tmp_path / rows[r]["path"]
    assert f"{train_csv}, row {line} (header = row 1): {image}\n    is the same file as " in msg
    assert f"as {train_csv}, row {r + 2} (header = row 1): {image}: twice in " in msg
    t = rw.read_splits("chexpert", fx.root, {"duplicates": "keep_first"})
    assert [d["row"] for d in t.dropped] == [line] and t.dropped[0]["first_row"] == r + 2
    split = t.dropped[0]["split"]
    assert t.splits[split].keys.count(rows[r]["path"]) == 1
    # a valid.csv (test) row naming a train.csv image: refused whatever the policy
    header, test_rows = read_rows(valid_csv)
    keep = header.index("Path")
    like = next(i for i, row in enumerate(test_rows) if row[keep] == fx.extra["test_paths"][0])
    test_line = append_row(valid_csv, like, {"Path": rows[r]["path"]})
    with pytest.raises(rw.RealWorldError) as err:
        rw.read_splits("chexpert", fx.root, {"duplicates": "keep_first"})
    msg = str(err.value)
    assert f"{valid_csv}, row {test_line} (header = row 1): {image}\n    is the same file" in msg
    assert f"in {split} and test" in msg


# ------------------------------------------------------------------------ labels and layouts


def test_csv_inferred_classes_are_printed_with_counts_so_a_typo_shows(tmp_path, capsys):
    fx = write_csv_dataset(tmp_path / "m", n=(8, 4, 4), classes=("bird", "cat", "dog"))
    opts = fx.extra["options"] | {"classes": None}
    _edit(fx.root / "train.csv", 5, "ann2", "fish")  # a typo in an annotator column
    t = rw.read_splits("csv", fx.root, opts)
    assert t.classes == ["bird", "cat", "dog", "fish"]  # without `classes`: a class of its own
    err = capsys.readouterr().err
    assert "csv: no `classes` option, so the classes are the 4 distinct labels" in err
    lines = {ln.split()[0]: ln for ln in err.splitlines() if ln.startswith("  ")}
    assert set(lines) == {"bird", "cat", "dog", "fish"}
    assert lines["fish"].split()[1] == "1"
    assert (
        f"first in {fx.root / 'train.csv'}, row 7 (header = row 1), column 'ann2'" in lines["fish"]
    )
    cells = sum(int(ln.split()[1]) for ln in lines.values())
    filled = sum(
        (pd.read_csv(fx.root / f"{s}.csv", dtype=str, keep_default_na=False) != "").sum().sum()
        - len(fx.noisy[s])  # every cell but the path column
        for s in SPLITS
    )
    assert cells == filled
    # with `classes`, the typo is an error naming the file, row and column; nothing printed
    opts["classes"] = ["bird", "cat", "dog"]
    with pytest.raises(
        rw.RealWorldError, match=r"train\.csv, row 7 \(header = row 1\), column 'ann2': unknown label 'fish'; allowed: bird, cat, dog"
    ):  # fmt: skip
        rw.read_splits("csv", fx.root, opts)
    assert "classes are" not in capsys.readouterr().err


@pytest.mark.parametrize("finding", FINDINGS)
def test_chexpert_train_csv_missing_a_finding_names_it(tmp_path, finding):
    fx = write_chexpert_official(tmp_path, n_patients=6, n_test=4)
    df = pd.read_csv(fx.root / "train.csv", dtype=str, keep_default_na=False)
    df.drop(columns=[finding]).to_csv(fx.root / "train.csv", index=False)
    with pytest.raises(rw.RealWorldError) as err:
        rw.check_layout("chexpert", fx.root, {})
    msg = str(err.value)
    assert f"lacks {finding!r} (the 5-class task needs Path and" in msg
    assert f"{fx.root / 'train.csv'} fits neither layout: it has observation columns" in msg


def test_chexpert_csv_with_neither_layout_names_what_each_lacks(tmp_path):
    (tmp_path / "c").mkdir()
    write_csv(tmp_path / "c" / "train.csv", ["Path", "Grade"], [["a.jpg", "1"]])
    with pytest.raises(rw.RealWorldError) as err:
        rw.check_layout("chexpert", tmp_path / "c", {})
    msg = str(err.value)
    assert "the official layout needs 'Atelectasis', 'Cardiomegaly', 'Consolidation'" in msg
    assert "the prepared one needs 'Label', which it lacks" in msg


@pytest.mark.parametrize("small", [True, False])
def test_a_renamed_chexpert_folder_names_the_cause(tmp_path, small):
    fx = write_chexpert_official(tmp_path, small=small, n_patients=24, n_test=6)
    folder = fx.root.name
    renamed = fx.root.rename(tmp_path / "chexpert_renamed")
    with pytest.raises(rw.RealWorldError) as err:
        rw.check_layout("chexpert", renamed, {})  # at parse time, before any row is read
    msg = str(err.value)
    first = fx.extra["train_rows"][0]["path"]
    assert f"the Path values of {renamed / 'train.csv'} start with '{folder}/'" in msg
    assert f"would resolve to {renamed / first}, which does not exist" in msg
    assert f"{renamed.joinpath(*first.split('/')[1:])} exists" in msg
    assert f"rename it back to {folder} (root: {tmp_path / folder})" in msg
    # valid.csv's Path values written under another folder name
    renamed.rename(fx.root)
    df = pd.read_csv(fx.root / "valid.csv", dtype=str, keep_default_na=False)
    df["Path"] = df["Path"].str.replace(f"{folder}/", "CheXpert-v0/", regex=False)
    df.to_csv(fx.root / "valid.csv", index=False)
    with pytest.raises(rw.RealWorldError, match=r"valid\.csv start with 'CheXpert-v0/'"):
        rw.check_layout("chexpert", fx.root, {})
    # ... or only a later row: found when the rows are read
    df = pd.read_csv(fx.root / "valid.csv", dtype=str, keep_default_na=False)
    df["Path"] = df["Path"].str.replace("CheXpert-v0/", f"{folder}/", regex=False)
    df.loc[3, "Path"] = df.loc[3, "Path"].replace(f"{folder}/", "CheXpert-v0/")
    df.to_csv(fx.root / "valid.csv", index=False)
    rw.check_layout("chexpert", fx.root, {})
    with pytest.raises(rw.RealWorldError, match=r"valid\.csv start with 'CheXpert-v0/'"):
        rw.read_splits("chexpert", fx.root, {})


# -------------------------------------------------------------------------------------- docs


def test_docs_say_what_a_real_world_method_is_told():
    """docs/datasets.md documents `rate_source` with the default the code applies."""
    from lnm.config import load_config, method_params

    text = (REPO / "docs" / "datasets.md").read_text()
    rows = {r.split("|")[1].strip(): r for r in text.splitlines() if r.startswith("| `")}
    assert "`rate_source`" in rows
    row = rows["`rate_source`"]
    assert "`estimated` (default)" in row and "`assumed`" in row
    assert "rate_source" in rows["`assumed_rates`"]  # no longer "the rate told to the methods"
    cfg = load_config()
    entry = cfg["real_world"]["drtid"]
    assert "rate_source" not in entry  # config.yaml leaves the default
    told = method_params(cfg, "coteaching", grid.REAL, 0.4, "drtid")["forget_rate"]
    assert told == grid.ESTIMATED
    entry["rate_source"] = "assumed"
    assert method_params(cfg, "coteaching", grid.REAL, 0.4, "drtid")["forget_rate"] is None


def test_the_schema_lists_the_duplicate_policies():
    from lnm.config import load_schema

    schema = load_schema()
    entry = schema["properties"]["real_world"]["additionalProperties"]
    for adapter, rule in zip(grid.ADAPTERS, entry["allOf"], strict=True):
        assert rule["if"]["properties"]["adapter"]["const"] == adapter
        duplicates = rule["then"]["properties"]["options"]["properties"]["duplicates"]
        assert duplicates["enum"] == list(DUPLICATE_POLICIES)
        assert "duplicates" not in rw.get_adapter(adapter).options  # one default, for every adapter
    opts = {"image_column": "p", "label_column": "l"}
    assert rw.normalize_options("csv", opts)["duplicates"] == "refuse"
    assert rw.normalize_options("drtid", {})["duplicates"] == "refuse"


def test_validate_source_checks_rows_and_files_without_decoding(tmp_path, monkeypatch, capsys):
    """What `lnm validate` can call: every row and file checked, the notes printed, no image
    decoded."""
    import PIL.Image

    def no_decode(*a, **k):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(PIL.Image, "open", no_decode)
    fx = write_csv_dataset(tmp_path / "m", n=(6, 3, 3))
    opts = fx.extra["options"] | {"classes": None}
    t = rw.validate_source("csv", fx.root, opts)
    assert len(t.splits["train"]) == 6 and "classes are the 3 distinct" in capsys.readouterr().err
    append_row(fx.root / "test.csv", 0, {"path": "images/train/0004.png"})
    with pytest.raises(rw.RealWorldError, match=r"in train and test \(test images would train"):
        rw.validate_source("csv", fx.root, opts, log=print)


# ---------------------------------------------------------------------------------- registry


def test_the_registry_reads_each_adapter_file_as_python_does():
    """lnm.grid reads the adapter files without importing them (the schema, rules and has-clean
    decisions); what it reads equals the classes' own attributes."""
    import jsonschema

    assert grid.ADAPTERS == ("drtid", "kaggledr", "chexpert", "csv")  # their `order`
    for name in grid.ADAPTERS:
        info, adapter = grid.adapter_info(name), rw.get_adapter(name)
        assert type(adapter).__module__ == f"lnm.data.adapters.{info.module}"
        assert info.options == adapter.all_options() and info.clean_train == adapter.clean_train
        assert list(info.options)[-1] == "duplicates"  # the common option after the adapter's
        schema = info.options_schema()
        required = schema.pop("required", [])  # no default: the user names them
        given = {k: v for k, v in info.defaults.items() if k not in required}
        jsonschema.validate(given, schema)  # every default fits its own declaration
        assert rw.normalize_options(name, given if name != "csv" else {**given, **CSV_COLS})
    assert grid.adapter_info("csv").options_schema()["required"] == ["image_column", "label_column"]
    with pytest.raises(ValueError, match=r"unknown real-world adapter 'nope'; allowed: drtid, "):
        grid.adapter_info("nope")


CSV_COLS = {"image_column": "path", "label_column": "label"}


@pytest.mark.parametrize(
    "adapter, options, clean",
    [
        ("drtid", {}, True),
        ("chexpert", {}, False),
        ("csv", CSV_COLS, False),
        ("csv", {**CSV_COLS, "clean_column": "c"}, True),
        ("csv", {**CSV_COLS, "annotator_columns": ["a", "b"]}, True),
        ("csv", {**CSV_COLS, "annotator_columns": None}, False),
    ],
)
def test_clean_train_labels_follow_the_adapters_declaration(adapter, options, clean):
    assert rw.has_clean_train(adapter, options) is clean
    assert grid.adapter_has_clean_train(adapter, options) is clean
    cfg = {"real_world": {"d": {"adapter": adapter, "options": options}}}
    assert grid.has_clean_train(cfg, "d") is clean


def test_config_yaml_sizes_are_lnmbenchs():
    """config.yaml declares the LNMBench sets at the size each adapter says LNMBench used."""
    from lnm.config import load_config

    cfg = load_config()
    for entry in cfg["real_world"].values():
        assert entry["size"] == rw.get_adapter(entry["adapter"]).lnmbench_size
    assert rw.get_adapter("csv").lnmbench_size is None


@pytest.mark.parametrize(
    "source, why",
    [
        ("class X(Adapter):\n    name = 'drtid'\n", r"x\.py, class X: adapter name 'drtid' is already"),
        (
            "class X(Adapter):\n    name = 'x'\n    options = {'k': {'type': 'integer'}}\n",
            r"x\.py, class X: options \['k'\] declare no default",
        ),
        (
            "class X(Adapter):\n    name = 'x'\n    clean_train = 'yes'\n",
            r"x\.py, class X: clean_train 'yes': allowed: true, false or option names",
        ),
    ],
)  # fmt: skip
def test_a_malformed_adapter_file_is_named(tmp_path, monkeypatch, source, why):
    import shutil

    folder = tmp_path / "adapters"
    shutil.copytree(grid.ADAPTERS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "x.py").write_text("from .base import Adapter\n\n\n" + source)
    monkeypatch.setattr(grid, "ADAPTERS_DIR", folder)
    grid.adapter_catalog.cache_clear()
    try:
        with pytest.raises(ValueError, match=why):
            grid.adapter_catalog()
    finally:
        grid.adapter_catalog.cache_clear()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"val_fraction": 0.7}, "real_world.cx.options.val_fraction: 0.7 is not allowed; must be <= 0.5"),
        ({"seed": 1}, "unknown key(s) ['seed'] under 'real_world.cx.options'; allowed keys: ['duplicates', 'frontal_only'"),
        ({"duplicates": "keep"}, "real_world.cx.options.duplicates: 'keep' is not allowed; allowed values: ['refuse', 'keep_first']"),
    ],
)  # fmt: skip
def test_the_config_schema_checks_each_adapters_options_once(tmp_path, options, message):
    """A bad option is named by the config check, with the key and what is allowed, once: the
    folder check (which would name it again) skips an entry whose options the schema refused."""
    from lnm.config import ConfigError, load_config

    fx = write_chexpert_prepared(tmp_path / "cx", n=(4, 2, 2))
    entry = {"adapter": "chexpert", "root": str(fx.root), "size": 16, "assumed_rates": [0.4]}
    overrides = {"datasets": ["cx"], "real_world": {"cx": {**entry, "options": options}}}
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides, folders=True)
    text = str(err.value)
    assert message in text and text.count("real_world.cx") == 1, text
    load_config(overrides={**overrides, "real_world": {"cx": entry}}, folders=True)  # fine
