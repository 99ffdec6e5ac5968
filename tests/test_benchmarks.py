"""The benchmarks a user or the GPU check runs, each on a tiny input on the CPU: they run end to
end and their figures hold together (grid_cost: tests/test_grid_cost.py; reproduce_cell:
tests/test_reproduction_cell.py; gpu_check.sh and gpu_summary: tests/test_gpu_check.py).
Their shared module: synthetic data through lnm's own HDF5 writer."""

import json

import numpy as np
import pytest
import torch

from lnm.data.hdf5 import load_h5
from tests.conftest import benchmark

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def common():
    return benchmark("_common")


def test_synthetic_data_is_learnable_noisy_as_asked_and_written_by_lnm(common, tmp_path):
    counts = {"train": 400, "val": 100, "test": 50}
    ds, noise = common.synthetic(counts, 12, 2, 3, rate=0.25)
    assert {s: len(x) for s, x in ds.images.items()} == counts
    assert ds.images["train"].shape[1:] == (12, 12, 2) and ds.num_classes == 3
    # class c brightens rows 4c..4c+3: the brightest band names the label
    rows = ds.images["train"].astype(float).mean(axis=(2, 3)).reshape(-1, 3, 4).mean(-1)
    np.testing.assert_array_equal(rows.argmax(1), ds.labels["train"])
    flipped = noise["train_noisy"] != ds.labels["train"]
    assert abs(flipped.mean() - 0.25) < 3 * np.sqrt(0.25 * 0.75 / 400)  # 3 sigma
    np.testing.assert_array_equal(noise["train_is_clean"], ~flipped)
    np.testing.assert_allclose(noise["transition"].sum(1), 1.0)
    assert noise["transition"].diagonal().min() > 0.5

    path = tmp_path / "s.h5"
    noise = common.write_synthetic(path, counts, 12, 2, 3, rate=0.25, dataset="breastmnist")
    back = load_h5(path)  # the sidecar checks
    assert back.attrs["dataset"] == "breastmnist" and back.attrs["classes"] == ["c0", "c1", "c2"]
    for split in counts:
        np.testing.assert_array_equal(back.images[split], ds.images[split])
    np.testing.assert_allclose(back.attrs["mean"], ds.images["train"].mean((0, 1, 2)) / 255)


def test_a_missing_cuda_device_is_named(common, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="'cuda' requested but CUDA is not available"):
        common.device("cuda")
    assert common.device("auto") == CPU


def test_throughput_pipelines_each_train_the_same_model_on_every_image():
    tp = benchmark("throughput")
    fns, new_method = tp.pipelines("resnet8", 16, 28, 8, CPU, workers=0)
    start = [p.detach().clone() for p in new_method().nets[0].parameters()]
    for name in tp.PIPELINES:
        m = new_method()  # the same seed: the same initial network
        params = list(m.nets[0].parameters())
        assert all(torch.equal(a, b) for a, b in zip(params, start))
        assert fns[name](m, 0) == 24  # three whole batches of 8 of the 28 images
        assert not all(torch.equal(a, b) for a, b in zip(params, start)), name  # trained


def test_throughput_writes_the_rows_the_gpu_summary_reads(tmp_path, capsys):
    tp, summary = benchmark("throughput"), benchmark("gpu_summary")
    out = tmp_path / "throughput.json"
    args = ["--compare", "--device", "cpu", "--configs", "resnet8@16", "--n", "24"]
    assert (
        tp.main([*args, "--batch", "8", "--rounds", "1", "--workers", "0", "--json", str(out)]) == 0
    )
    [row] = json.loads(out.read_text())["rows"]
    assert (row["device"], row["backbone"], row["size"], row["images"]) == (
        "cpu",
        "resnet8",
        16,
        24,
    )
    assert row["ours/dataloader"] == pytest.approx(row["ours"] / row["dataloader"])
    assert row["ours/compute"] == pytest.approx(row["ours"] / row["compute"])
    assert "resnet8     16     8     24" in capsys.readouterr().out
    # the summary judges such a row (a CUDA one of a target configuration) against the targets
    out.write_text(json.dumps({"rows": [{**row, "device": "cuda", "backbone": "resnet18",
                                         "size": 28}]}))  # fmt: skip
    rows = summary.throughput_rows(tmp_path)
    assert rows[0][1].startswith(f"{row['ours/dataloader']:.2f}x") and rows[0][3] != "FAILED"


def test_compile_bench_eager_times_and_resumes_exactly(capsys):
    cb = benchmark("compile_bench")
    argv = ["--device", "cpu", "--backbone", "resnet8", "--size", "8", "--batch-size", "8"]
    argv += ["--steps", "1", "--repeats", "1", "--modes", "none", "--methods", "ce,dividemix"]
    assert cb.main(argv) == 0
    rows = [r.split() for r in capsys.readouterr().out.splitlines() if r.split()[2:3] == ["eager"]]
    assert [r[0] for r in rows] == ["ce", "dividemix"]
    assert all(r[-2:] == ["exact", "-"] and float(r[3]) > 0 for r in rows)


@pytest.mark.slow  # compiles ResNet-8 for the CPU (inductor, a C++ compiler): ~45 s
def test_compile_bench_compiled_resumes_exactly_and_loads_eager_checkpoints(capsys):
    cb = benchmark("compile_bench")
    torch._dynamo.reset()
    argv = ["--device", "cpu", "--backbone", "resnet8", "--size", "8", "--batch-size", "8"]
    assert cb.main([*argv, "--steps", "1", "--repeats", "1", "--modes", "default"]
                   + ["--methods", "ce"]) == 0  # fmt: skip
    [row] = [
        r.split() for r in capsys.readouterr().out.splitlines() if r.split()[2:3] == ["default"]
    ]
    assert row[:3] == ["ce", "fp32", "default"] and row[-2:] == ["exact", "ok"]


@pytest.mark.slow  # five lnm train processes: ~40 s
def test_pack_runs_packed_outputs_equal_separate_ones(tmp_path, capsys):
    pr = benchmark("pack_runs")
    out = tmp_path / "pack.json"
    argv = ["--synthetic", "--runs", "2", "--epochs", "1", "--slots", "1", "--repeats", "1"]
    assert pr.main([*argv, "--workdir", str(tmp_path / "w"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["data"].startswith("synthetic BreastMNIST-shaped set")
    assert [r["mode"] for r in doc["rows"]] == ["separate x1", "packed x1"]
    for r in doc["rows"]:
        assert r["differs"] == [] and r["wall_per_run"] == pytest.approx(r["wall"] / 2)
        assert 0 < r["outside_epochs_per_run"] < r["wall_per_run"]
    assert "outputs of packed x1 (1 epoch(s)) against separate x1: byte-identical" in (
        capsys.readouterr().out
    )
