"""The shared trainer: exact resume for every method, determinism, metrics, checkpoints."""

import functools
import json
import os
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch

from lnm.checksum import verify
from lnm.codedeps import code_digest
from lnm.grid import EVAL_VIEWS
from lnm.methods import REGISTRY
from lnm.noise.generate import generate_noise_file
from lnm.noise.io import load_noise, save_noise
from lnm.train import trainer
from lnm.train.augment import Augmenter
from lnm.train.trainer import ATTEMPT_LOG, CHECKPOINT, REPO_ROOT, default_code_files
from tests.conftest import make_h5, run_method, tiny_spec


class Crash(RuntimeError):
    pass


def comparable(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "provenance"}


def crash_in_epoch_2(line):
    if "epoch 2/3" in line:
        raise Crash(line)


def interrupted(tmp_path, method="ce", **kw):
    """Start a 3-epoch run in tmp_path/resumed and kill it in epoch 2 (a checkpoint of epoch 1
    remains)."""
    with pytest.raises(Crash):
        run_method(tmp_path, method, epochs=3, out="resumed", log=crash_in_epoch_2, **kw)
    assert (tmp_path / "resumed" / CHECKPOINT).exists()
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    return tmp_path / "resumed"


def set_aside_files(out, kind):
    return sorted(p.name for p in out.glob(f"{CHECKPOINT}.{kind}-*") if p.suffix != ".sha256")


@pytest.mark.parametrize("method", list(REGISTRY))
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, method):
    full, _ = run_method(tmp_path, method, epochs=3, out="full")
    interrupted(tmp_path, method)
    lines = []
    resumed, out = run_method(tmp_path, method, epochs=3, out="resumed", log=lines.append)
    assert comparable(resumed) == comparable(full)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "per_epoch.csv"), pd.read_csv(tmp_path / "full" / "per_epoch.csv")
    )
    # epochs are counted from 1 everywhere: the resume line, the progress lines, metrics.json
    resume = [i for i, line in enumerate(lines) if line.startswith("resuming")]
    assert len(resume) == 1 and "after epoch 1/3" in lines[resume[0]], lines
    assert "at epoch 2/3" in lines[resume[0]]
    assert resumed["provenance"]["resumed_at_epochs"] == [2]
    assert full["provenance"]["resumed_at_epochs"] == []
    # the log goes on from the interrupted attempt (replayed) instead of starting empty
    before, after = lines[: resume[0]], lines[resume[0] + 1 :]
    assert any("epoch 1/3" in line for line in before), lines
    assert [line.split("] ")[1].split(" loss")[0] for line in after if "] epoch" in line] == [
        "epoch 2/3",
        "epoch 3/3",
    ]
    for name in (CHECKPOINT, CHECKPOINT + ".sha256", ATTEMPT_LOG):
        assert not (out / name).exists()


def test_same_seed_same_metrics_and_different_seed_differs(tmp_path):
    a, _ = run_method(tmp_path, "ce", epochs=2, out="a")
    b, _ = run_method(tmp_path, "ce", epochs=2, out="b")
    c, _ = run_method(tmp_path, "ce", epochs=2, out="c", seed=1)
    assert comparable(a) == comparable(b)
    assert a["test_acc_last_k"] != c["test_acc_last_k"] or a["nll_last_k"] != c["nll_last_k"]


def test_metrics_headline_is_last_k_mean_and_best_val_not_max(tmp_path):
    m, out = run_method(tmp_path, "ce", epochs=4)
    curve = pd.read_csv(out / "per_epoch.csv")
    assert m["test_acc_last_k"] == pytest.approx(curve.test_acc.iloc[-2:].mean())
    best = int(curve.val_acc.to_numpy().argmax())
    assert m["best_val_epoch"] == best and m["test_acc_best_val"] == curve.test_acc[best]
    assert "max" not in json.dumps(sorted(m)).lower()  # the test maximum is never reported
    assert m["noise_rate_realised"] == pytest.approx(0.4, abs=4 * (0.24 / 96) ** 0.5)
    assert len(m["per_class_recall_last_k"]) == 3 and m["identifiable"] is True
    for key in ("balanced_acc_last_k", "macro_f1_last_k", "auc_last_k", "ece_last_k", "nll_last_k"):
        assert m[key] is not None
    probs = np.load(out / "test_probs.npz")
    assert probs["probs"].shape == (48, 3)
    np.testing.assert_allclose(probs["probs"].sum(1), 1, atol=1e-5)


def test_checkpoint_from_a_different_config_is_set_aside_and_the_run_starts_fresh(tmp_path):
    other = {"name": "sgd", "lr": 0.01}
    full, _ = run_method(tmp_path, "ce", epochs=3, out="full", optimizer=other)
    out = interrupted(tmp_path)
    lines = []
    m, _ = run_method(tmp_path, "ce", epochs=3, out="resumed", optimizer=other, log=lines.append)
    assert comparable(m) == comparable(full)
    (stale,) = set_aside_files(out, "stale")
    said = [line for line in lines if line.startswith("set aside")]
    assert len(said) == 1 and stale in said[0] and "spec (differs in: optimizer)" in said[0]
    assert not any(line.startswith("resuming") for line in lines)
    assert m["provenance"]["resumed_at_epochs"] == []
    assert [r["file"] for r in m["provenance"]["checkpoints_set_aside"]] == [stale]
    verify(out / stale)  # set aside with its sidecar, intact, for inspection


def replace_noise(tmp_path):
    """Another realisation of the same noise cell (same pattern, rate and noise_seed fields)."""
    npz = tmp_path / "noise-symmetric-0.4.npz"
    generate_noise_file(tmp_path / "tiny.h5", tmp_path / "other.npz", "symmetric", 0.4, 1)
    noise = load_noise(tmp_path / "other.npz")
    noise["noise_seed"] = 0
    assert (noise["train_noisy"] != load_noise(npz)["train_noisy"]).any()
    save_noise(npz, noise)


def replace_data(tmp_path):
    """The same labels with different images, and the noise file drawn again on them (the same
    labels; a noise file records the SHA-256 of the data file it was drawn on)."""
    make_h5(tmp_path / "tiny.h5", signal=100)
    generate_noise_file(
        tmp_path / "tiny.h5", tmp_path / "noise-symmetric-0.4.npz", "symmetric", 0.4, 0
    )


@pytest.mark.parametrize("change", ["noise", "data"])
def test_resume_after_changed_inputs_starts_fresh_and_equals_an_uninterrupted_run(tmp_path, change):
    out = interrupted(tmp_path)  # epoch 1 trained on the old inputs
    {"noise": replace_noise, "data": replace_data}[change](tmp_path)
    full, _ = run_method(tmp_path, "ce", epochs=3, out="full")  # on the new inputs only
    lines = []
    m, _ = run_method(tmp_path, "ce", epochs=3, out="resumed", log=lines.append)
    assert comparable(m) == comparable(full)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "per_epoch.csv"), pd.read_csv(tmp_path / "full" / "per_epoch.csv")
    )
    (stale,) = set_aside_files(out, "stale")
    (said,) = [line for line in lines if line.startswith("set aside")]
    assert f"different {change} (sha256" in said and "spec" not in said and stale in said
    assert m["provenance"]["resumed_at_epochs"] == []
    assert (out / f"{ATTEMPT_LOG}.{stale.split('.')[-1]}").exists()  # the old attempt's log


def test_resume_after_changed_code_starts_fresh(tmp_path, monkeypatch):
    """The code files given (the train rule passes its code inputs) are part of the identity."""
    code = tmp_path / "code"
    code.mkdir()
    files = [code / "a.py", code / "b.py"]
    for f in files:
        f.write_text("x = 1\n")
    monkeypatch.setattr(
        trainer, "train_run", functools.partial(trainer.train_run, code_files=files)
    )
    interrupted(tmp_path)
    mtime = files[1].stat().st_mtime_ns
    files[1].write_text("x = 2\n")
    os.utime(files[1], ns=(mtime, mtime))  # the content decides, not the modification time
    full, _ = run_method(tmp_path, "ce", epochs=3, out="full")
    lines = []
    m, out = run_method(tmp_path, "ce", epochs=3, out="resumed", log=lines.append)
    (said,) = [line for line in lines if line.startswith("set aside")]
    assert "different code (sha256" in said and set_aside_files(out, "stale")
    assert m["provenance"]["resumed_at_epochs"] == []
    assert comparable(m) == comparable(full)
    assert m["provenance"]["code_sha256"] == code_digest(files, REPO_ROOT)


def test_default_code_is_the_trainer_and_method_closure_relative_to_the_repo(tmp_path):
    files = default_code_files(tiny_spec(method="coteaching"))
    rel = {f.relative_to(REPO_ROOT).as_posix() for f in files}
    assert {"lnm/train/trainer.py", "lnm/methods/coteaching.py", "lnm/train/data.py"} <= rel
    assert "lnm/methods/ce.py" not in rel and "lnm/cli.py" not in rel
    m, _ = run_method(tmp_path, "ce", epochs=1, last_k=1)
    assert m["provenance"]["code_sha256"] == code_digest(default_code_files(tiny_spec()), REPO_ROOT)


@pytest.mark.parametrize("damage", ["flip", "sidecar"])
def test_corrupt_checkpoint_is_set_aside_not_loaded(tmp_path, damage):
    full, _ = run_method(tmp_path, "ce", epochs=3, out="full")
    out = interrupted(tmp_path)
    ckpt = out / CHECKPOINT
    if damage == "flip":  # one byte in the middle of the file (inside a weight tensor)
        data = bytearray(ckpt.read_bytes())
        data[len(data) // 2] ^= 0x01
        ckpt.write_bytes(bytes(data))
    else:
        (out / (CHECKPOINT + ".sha256")).unlink()
    lines = []
    m, _ = run_method(tmp_path, "ce", epochs=3, out="resumed", log=lines.append)
    (corrupt,) = set_aside_files(out, "corrupt")
    (said,) = [line for line in lines if line.startswith("set aside")]
    assert corrupt in said and "checksum" in said
    assert ("mismatch" if damage == "flip" else "no checksum record") in said
    assert m["provenance"]["resumed_at_epochs"] == []
    assert comparable(m) == comparable(full)
    assert not ckpt.exists()


def test_resume_after_the_last_checkpoint_only_writes_the_outputs(tmp_path):
    full, _ = run_method(tmp_path, "ce", epochs=2, out="full", last_k=1)
    with mock.patch.object(trainer, "summarize", side_effect=Crash("killed")):
        with pytest.raises(Crash):  # killed after the last checkpoint, before the outputs
            run_method(tmp_path, "ce", epochs=2, out="resumed", last_k=1)
    lines = []
    m, _ = run_method(tmp_path, "ce", epochs=2, out="resumed", last_k=1, log=lines.append)
    assert any("after epoch 2/2" in line for line in lines)
    assert m["provenance"]["resumed_at_epochs"] == [3]
    assert comparable(m) == comparable(full)
    a, b = (np.load(tmp_path / d / "test_probs.npz") for d in ("full", "resumed"))
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_two_network_runs_record_every_view_and_the_headline_follows_eval_view(tmp_path):
    ref, out = run_method(
        tmp_path, "coteaching", epochs=3, out="ref", eval_view="mean_of_accuracies"
    )
    harm, hout = run_method(tmp_path, "coteaching", epochs=3, out="harm")
    a, b = pd.read_csv(out / "per_epoch.csv"), pd.read_csv(hout / "per_epoch.csv")
    views = [f"test_acc_{v}" for v in EVAL_VIEWS]
    same = ["train_loss", "test_acc_net0", "test_acc_net1", *views]
    pd.testing.assert_frame_equal(a[same], b[same])  # the view changes no training
    np.testing.assert_allclose(a.test_acc, a.test_acc_mean_of_accuracies)
    np.testing.assert_allclose(a.test_acc, (a.test_acc_net0 + a.test_acc_net1) / 2, rtol=1e-5)
    np.testing.assert_allclose(b.test_acc, b.test_acc_softmax_mean)
    assert ref["eval_view"] == "mean_of_accuracies"
    assert ref["eval_view_text"] == "mean of the two networks' accuracies"
    assert harm["eval_view"] == "softmax_mean" and "softmax" in harm["eval_view_text"]
    for m, curve in ((ref, a), (harm, b)):
        for v in EVAL_VIEWS:
            last = curve[f"test_acc_{v}"].iloc[-2:].mean()  # per_epoch.csv has 6 digits
            assert m[f"test_acc_{v}_last_k"] == pytest.approx(last, rel=1e-5)
    assert ref["test_acc_last_k"] == pytest.approx(ref["test_acc_mean_of_accuracies_last_k"])
    assert harm["test_acc_last_k"] == pytest.approx(harm["test_acc_softmax_mean_last_k"])
    assert ref["test_acc_last_k"] == pytest.approx(np.mean(ref["test_acc_last_k_per_net"]))
    npz = np.load(out / "test_probs.npz")
    assert (str(npz["eval_view"]), str(npz["probs_view"])) == ("mean_of_accuracies", "softmax_mean")
    assert npz["probs_per_net"].shape == npz["logits"].shape == (2, 48, 3)
    np.testing.assert_allclose(npz["probs"], npz["probs_per_net"].mean(0), atol=1e-6)


def test_single_network_runs_record_the_network_and_the_effective_precision(tmp_path):
    m, out = run_method(tmp_path, "ce", epochs=2, precision="bf16")
    assert (m["eval_view"], m["precision"], m["precision_configured"]) == (
        "softmax_mean",
        "fp32",  # CPUs always compute in fp32
        "bf16",
    )
    assert "one network" in m["eval_view_text"]
    assert m["provenance"]["deterministic"]["bf16_autocast"] is False
    assert not [c for c in pd.read_csv(out / "per_epoch.csv") if c.startswith("test_acc_")]
    assert not [k for k in m if k.startswith(tuple(f"test_acc_{v}" for v in EVAL_VIEWS))]
    npz = np.load(out / "test_probs.npz")
    assert "probs_per_net" not in npz and npz["logits"].shape == (1, 48, 3)
    assert str(npz["eval_view"]) == str(npz["probs_view"]) == "softmax_mean"


def test_precision_is_part_of_the_resume_identity(tmp_path):
    interrupted(tmp_path)  # precision bf16 (TINY_SPEC)
    lines = []
    m, out = run_method(tmp_path, "ce", epochs=3, out="resumed", precision="fp32", log=lines.append)
    (said,) = [line for line in lines if line.startswith("set aside")]
    assert "spec (differs in: precision)" in said and set_aside_files(out, "stale")
    assert m["precision"] == m["precision_configured"] == "fp32"


def test_augmenter_crops_and_flips_per_sample():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    aug = Augmenter([0.0], [1 / 255], crop_padding=1, hflip=True)
    g = torch.Generator().manual_seed(0)
    outs = torch.stack([aug(x, g) for _ in range(200)]).round().long()  # values = pixel ids
    # every output is a (possibly flipped) 4x4 window of the zero-padded image
    assert outs.shape == (200, 2, 1, 4, 4)
    assert set(outs.unique().tolist()) <= set(range(32))
    # both flips and all 9 offsets occur, and the two samples are augmented independently
    assert (outs[:, 0] != outs[:, 1] - 16).any()
    centres = outs[:, 0, 0, 1:3, 1:3].reshape(200, -1)
    assert len({tuple(c.tolist()) for c in centres}) >= 9
