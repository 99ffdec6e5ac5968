"""Raw-file verification, download failures, preprocessing and checksum refusals."""

import json
import shutil

import numpy as np
import pytest

from lnm.checksum import ChecksumError, sha256, verify, write_sidecar
from lnm.data import medmnist_io as mio
from lnm.data.hdf5 import load_h5, preprocess


def test_dataset_and_size_errors_name_value_and_allowed():
    with pytest.raises(mio.DataError, match=r"'chestmnist'.*multi-label.*allowed: pathmnist"):
        mio.raw_filename("chestmnist", 28)
    with pytest.raises(mio.DataError, match=r"'nodulemnist3d'.*3D"):
        mio.raw_filename("nodulemnist3d", 28)
    with pytest.raises(mio.DataError, match=r"image size 32 .*allowed: 28, 64, 128, 224"):
        mio.raw_filename("breastmnist", 32)
    assert mio.raw_filename("breastmnist", 28) == "breastmnist.npz"
    assert mio.raw_filename("breastmnist", 224) == "breastmnist_224.npz"


def _fake_npz(path, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        f"{s}_images": rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        for s, n in (("train", 546), ("val", 78), ("test", 156))
    }
    arrays |= {
        f"{s}_labels": rng.integers(0, 2, (n, 1), dtype=np.uint8)
        for s, n in (("train", 546), ("val", 78), ("test", 156))
    }
    np.savez(path, **arrays)


def test_wrong_md5_fails_naming_file_expected_actual_and_leaves_no_output(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _fake_npz(raw / "breastmnist.npz")
    rec = tmp_path / "out" / "rec.json"
    actual = __import__("hashlib").md5((raw / "breastmnist.npz").read_bytes()).hexdigest()
    with pytest.raises(mio.DataError) as err:
        mio.fetch("breastmnist", 28, raw, rec, allow_download=False)
    msg = str(err.value)
    assert "breastmnist.npz" in msg and "750601b1f35ba3300ea97c75c52ff8f6" in msg and actual in msg
    assert not rec.exists() and not (tmp_path / "out" / "rec.json.sha256").exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_failed_download_says_where_to_get_and_put_the_file(tmp_path, monkeypatch):
    import medmnist

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(medmnist.dataset.MedMNIST, "download", offline)
    with pytest.raises(mio.DataError) as err:
        mio.fetch("pneumoniamnist", 28, tmp_path / "raw", tmp_path / "rec.json")
    msg = str(err.value)
    assert "zenodo.org" in msg and "pneumoniamnist.npz" in msg
    assert str(tmp_path / "raw" / "pneumoniamnist.npz") in msg
    assert "28209eda62fecd6e6a2d98b1501bb15f" in msg
    assert not (tmp_path / "rec.json").exists()
    assert not (tmp_path / "raw" / "pneumoniamnist.npz").exists()


def test_real_file_is_accepted_offline_and_preprocessed(tmp_path, shared_medmnist):
    path, rec = mio.fetch(
        "breastmnist", 28, shared_medmnist, tmp_path / "rec.json", allow_download=False
    )
    assert rec["md5"] == "750601b1f35ba3300ea97c75c52ff8f6" and "path" not in rec
    assert path == shared_medmnist / "breastmnist.npz"
    preprocess(tmp_path / "rec.json", shared_medmnist, tmp_path / "b.h5")
    ds = load_h5(tmp_path / "b.h5")
    assert {s: len(v) for s, v in ds.labels.items()} == {"train": 546, "val": 78, "test": 156}
    assert ds.images["train"].shape == (546, 28, 28, 1) and ds.images["train"].dtype == np.uint8
    assert np.bincount(ds.labels["train"]).tolist() == [147, 399]
    assert ds.attrs["source_md5"] == rec["md5"] and ds.num_classes == 2
    assert ds.attrs["task"] == "binary-class"


def test_tampered_or_truncated_artifact_is_refused_by_name(tmp_path, tiny_h5):
    verify(tiny_h5)
    data = tiny_h5.read_bytes()
    tiny_h5.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ChecksumError, match=r"tiny\.h5: SHA-256 mismatch"):
        load_h5(tiny_h5)
    tiny_h5.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit
    with pytest.raises(ChecksumError, match="tiny.h5"):
        verify(tiny_h5)
    tiny_h5.write_bytes(data)
    assert verify(tiny_h5) == sha256(tiny_h5)


def test_preprocess_refuses_raw_file_changed_after_download(tmp_path, shared_medmnist):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(shared_medmnist / "breastmnist.npz", raw)
    mio.fetch("breastmnist", 28, raw, tmp_path / "rec.json", allow_download=False)
    _fake_npz(raw / "breastmnist.npz", seed=1)
    with pytest.raises(mio.DataError, match="MD5 mismatch"):
        preprocess(tmp_path / "rec.json", raw, tmp_path / "b.h5")
    assert not (tmp_path / "b.h5").exists()


def test_missing_sidecar_is_refused(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({}))
    with pytest.raises(ChecksumError, match="no checksum record"):
        verify(p)
    write_sidecar(p)
    verify(p)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_artifacts_follow_the_umask(tmp_path, umask, mode):
    """Artifacts and sidecars get 0666 minus the umask like any other new file, not mkstemp's
    private 0600 (results shared on a cluster must be readable by the group)."""
    import os
    import stat

    from lnm.checksum import artifact, sidecar, write_text

    old = os.umask(umask)
    try:
        write_text(tmp_path / "a.json", "{}")
        with artifact(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("a.json", "b.bin"):
        for f in (tmp_path / name, sidecar(tmp_path / name)):
            assert stat.S_IMODE(f.stat().st_mode) == mode, (f, oct(f.stat().st_mode))


def test_the_writer_writes_what_load_h5_reads_with_the_train_statistics(tmp_path):
    """lnm.data.hdf5.write_h5, the one writer of the layout (preprocess, tests, benchmarks)."""
    import h5py

    from lnm.data.hdf5 import SPLITS, write_h5

    rng = np.random.default_rng(0)
    images = {
        s: rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) for s, n in zip(SPLITS, (6, 3, 2))
    }
    labels = {s: np.arange(len(x)) % 2 for s, x in images.items()}
    votes = np.array([[0, 1], [1, -1], [0, 0], [1, 1], [-1, -1], [0, 1]])
    path = tmp_path / "d.h5"
    write_h5(path, images, labels, dataset="fixture", classes=["a", "b"], chunked=True,
             noisy_labels={"train": 1 - labels["train"]}, annotators={"train": votes},
             source="csv", real_world=True)  # fmt: skip
    ds = load_h5(path)  # its sidecar is checked
    assert {k: ds.attrs[k] for k in ("dataset", "size", "task", "n_channels", "n_classes")} == {
        "dataset": "fixture", "size": 4, "task": "binary-class", "n_channels": 3, "n_classes": 2
    }  # fmt: skip
    assert ds.attrs["classes"] == ["a", "b"] and ds.real_world and ds.attrs["source"] == "csv"
    for s in SPLITS:
        np.testing.assert_array_equal(ds.images[s], images[s])
        np.testing.assert_array_equal(ds.labels[s], labels[s])
    np.testing.assert_array_equal(ds.noisy_labels["train"], 1 - labels["train"])
    np.testing.assert_array_equal(ds.annotators["train"], votes)
    assert set(ds.noisy_labels) == set(ds.annotators) == {"train"}
    flat = images["train"].reshape(-1, 3) / 255
    np.testing.assert_allclose(ds.attrs["mean"], flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ds.attrs["std"], flat.std(0), rtol=1e-12)
    with h5py.File(path) as h5:  # one lzf-compressed image per chunk, as real-world files
        assert h5["val/images"].chunks == (1, 4, 4, 3) and h5["val/images"].compression == "lzf"
    other = tmp_path / "e.h5"
    with pytest.raises(ValueError, match=r"e\.h5: no images or labels of split\(s\) \['test'\]"):
        write_h5(
            other, {s: images[s] for s in ("train", "val")}, labels, dataset="x", classes=[0, 1]
        )
    assert not other.exists()
