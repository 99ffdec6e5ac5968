"""Real-world adapters (DRTiD, KaggleDR+, CheXpert, csv), their HDF5 and their errors, on the
format-faithful fixtures of tests/realworld_fixtures.py."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lnm.checksum import verify
from lnm.data import realworld as rw
from lnm.data.hdf5 import load_h5, load_image, preprocess_real, write_source_record
from tests.realworld_fixtures import (
    FINDINGS,
    POLICIES,
    write_chexpert_official,
    write_chexpert_prepared,
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
    assert rw.chexpert_reduce(v, "zero").tolist() == [0, 4, 0, -1, -1, -1, -1]
    assert rw.chexpert_reduce(v, "one").tolist() == [0, 4, -1, 1, -1, -1, -1]
    assert rw.chexpert_reduce(v, "exclude").tolist() == [0, 4, -1, -1, -1, -1, -1]


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
    assert rw.majority_vote(votes, 3).tolist() == [0, 2, 2, 0, -1]


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
        ("drtid", {"size": 3}, r"unknown option\(s\) size; allowed: none"),
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
