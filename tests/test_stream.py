"""The streaming data path: chosen by the memory budget, identical batches to the in-memory one,
no reader thread outlives its generator."""

import gc
import threading

import numpy as np
import pytest
import torch

from lnm.data.hdf5 import load_h5, write_h5
from lnm.train import trainer
from lnm.train.augment import LNMBENCH_AUGMENT
from lnm.train.data import DeviceData
from lnm.train.datasource import image_bytes, open_data
from lnm.train.stream import THREAD_NAME, StreamData
from tests.conftest import make_h5, run_method

CPU = torch.device("cpu")
#: LNMBench's fundus recipe (reference protocol §3.3) plus the crop/flip-only one of the tests
FUNDUS = LNMBENCH_AUGMENT
CROP_FLIP = {"crop_padding": 2, "hflip": True, "vflip": True}


def make_chunked_h5(path, n=(37, 11, 13), size=16, channels=3, seed=1):
    """make_h5's layout written as the real-world files are: one lzf-compressed image per chunk."""
    make_h5(path, n=n, size=size, channels=channels, seed=seed)
    ds = load_h5(path, check=False)
    write_h5(path, ds.images, ds.labels, chunked=True,
             **{k: ds.attrs[k] for k in ("dataset", "classes", "mean", "std")})  # fmt: skip
    return path


def noise_for(h5_path, seed=0, has_clean=True) -> dict:
    """A noise dict in the noise-file layout: 30 % of train and val labels changed."""
    ds = load_h5(h5_path, check=False)
    rng = np.random.default_rng(seed)
    c = ds.num_classes
    out = {"has_clean": has_clean, "val_has_clean": has_clean}
    for split in ("train", "val"):
        clean = ds.labels[split]
        flip = rng.random(len(clean)) < 0.3
        noisy = np.where(flip, (clean + rng.integers(1, c, len(clean))) % c, clean)
        out[f"{split}_noisy"] = noisy
        out[f"{split}_clean"] = clean if has_clean else np.full_like(clean, -1)
    out["train_is_clean"] = (
        out["train_noisy"] == out["train_clean"] if has_clean else np.zeros(len(noisy), bool)
    )
    out["transition"] = np.full((c, c), np.nan) if not has_clean else np.eye(c)
    return out


@pytest.fixture
def chunked(tmp_path):
    path = make_chunked_h5(tmp_path / "fundus.h5")
    return path, noise_for(path)


def both(h5, noise, augment, batch_size=8, drop_last=True):
    kw = dict(augment=augment, batch_size=batch_size, drop_last=drop_last, log=lambda s: None)
    mem = open_data(h5, noise, CPU, stream="never", **kw)
    streamed = open_data(h5, noise, CPU, stream="always", **kw)
    assert isinstance(mem, DeviceData) and isinstance(streamed, StreamData)
    return mem, streamed


def reader_threads():
    return [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]


def test_open_data_streams_when_the_images_exceed_the_budget(chunked):
    h5, noise = chunked
    total = sum(image_bytes(h5).values())
    assert total == (37 + 11 + 13) * 16 * 16 * 3
    lines = []
    args = (h5, noise, CPU, CROP_FLIP, 8, True)
    data = open_data(*args, memory_budget_bytes=total - 1, log=lines.append)
    assert isinstance(data, StreamData)
    assert "streaming" in lines[-1] and "larger than the budget of" in lines[-1]
    data = open_data(*args, memory_budget_bytes=total, log=lines.append)
    assert isinstance(data, DeviceData) and "loading" in lines[-1] and "within" in lines[-1]
    # never: loads even over the budget, and says so; always: streams within it
    data = open_data(*args, stream="never", memory_budget_bytes=1, log=lines.append)
    assert isinstance(data, DeviceData) and "although larger than the budget" in lines[-1]
    data = open_data(*args, stream="always", memory_budget_bytes=1 << 40, log=lines.append)
    assert isinstance(data, StreamData) and "stream=always" in lines[-1]
    # the default budget: half of the available memory, far above this file
    assert isinstance(open_data(*args, log=lines.append), DeviceData)
    with pytest.raises(ValueError, match=r"stream = 'sometimes'; allowed: auto, never, always"):
        open_data(*args, stream="sometimes")


def test_both_paths_expose_the_same_labels_and_attributes(chunked):
    mem, streamed = both(*chunked, FUNDUS)
    for key in ("num_classes", "in_chans", "num_train", "has_clean", "val_has_clean"):
        assert getattr(mem, key) == getattr(streamed, key), key
    assert mem.in_chans == 3 and mem.attrs.keys() == streamed.attrs.keys()
    for key, value in mem.attrs.items():
        np.testing.assert_array_equal(value, streamed.attrs[key], err_msg=key)
    for split in ("train", "val", "val_clean", "test"):
        assert torch.equal(mem.labels[split], streamed.labels[split]), split
    np.testing.assert_array_equal(mem.is_clean, streamed.is_clean)
    np.testing.assert_array_equal(mem.transition, streamed.transition)
    for split in ("train", "val", "test"):
        assert len(mem.images[split]) == len(streamed.images[split])
        assert streamed.images[split].shape == tuple(mem.images[split].shape)


@pytest.mark.parametrize(
    "augment, batch_size, drop_last",
    [(FUNDUS, 8, True), (FUNDUS, 5, False), (CROP_FLIP, 16, False), (CROP_FLIP, 64, True)],
)
def test_streamed_batches_equal_in_memory_batches(chunked, augment, batch_size, drop_last):
    mem, streamed = both(*chunked, augment, batch_size, drop_last)
    assert mem.batches_per_epoch() == streamed.batches_per_epoch()
    for seed, epoch, stream, bs in ((0, 0, 0, None), (3, 2, 0, None), (0, 1, 7, 3)):
        a = list(mem.epoch_batches(seed, epoch, stream, bs))
        b = list(streamed.epoch_batches(seed, epoch, stream, bs))
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            assert torch.equal(x.idx, y.idx) and torch.equal(x.y, y.y)
            assert torch.equal(x.raw, y.raw) and y.raw.is_contiguous()
            assert torch.equal(x.x, y.x)
            assert torch.equal(x.view(), y.view())  # the generators advanced alike
        seen = torch.cat([x.idx for x in b])
        assert len(seen.unique()) == len(seen)  # a permutation
    assert not reader_threads()


def test_streamed_eval_batches_and_indexing_equal_in_memory(chunked):
    mem, streamed = both(*chunked, FUNDUS)
    for split in ("train", "val", "test"):
        for bs in (4, 512):
            a, b = list(mem.eval_batches(split, bs)), list(streamed.eval_batches(split, bs))
            assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    idx = [5, 3, 3, 36, 0, 5, 17, 16, 18]  # unsorted, duplicates, runs
    for index in (idx, np.array(idx), torch.tensor(idx), torch.tensor([], dtype=torch.long)):
        assert torch.equal(mem.images["train"][index], streamed.images["train"][index])
    for index in (slice(3, 9), slice(None, None, 4), 7, -1, np.int64(2)):
        assert torch.equal(mem.images["val"][index], streamed.images["val"][index])
    mask = torch.arange(37) % 3 == 0
    assert torch.equal(mem.images["train"][mask], streamed.images["train"][mask])
    with pytest.raises(IndexError, match=r"train image index 37 outside 0\.\.36"):
        streamed.images["train"][[1, 37]]
    assert not reader_threads()


def test_abandoned_generators_leave_no_reader_thread(chunked):
    _, streamed = both(*chunked, FUNDUS, batch_size=2)
    for _ in streamed.epoch_batches(0, 0):  # a method breaking out of its loop
        break
    gc.collect()
    assert not reader_threads()
    it = streamed.epoch_batches(0, 1)
    next(it)
    next(it)
    assert len(reader_threads()) == 1  # reading ahead
    del it
    gc.collect()
    assert not reader_threads()
    ev = streamed.eval_batches("train", 2)
    next(ev)
    ev.close()
    assert not reader_threads()
    never_started = streamed.epoch_batches(0, 2)
    assert not reader_threads()  # the thread starts with the first batch
    del never_started


def test_a_read_error_reaches_the_training_loop(chunked, monkeypatch):
    _, streamed = both(*chunked, CROP_FLIP, batch_size=4)

    def broken(split, rows):
        raise OSError("disk gone")

    monkeypatch.setattr(streamed.reader, "read_rows", broken)
    with pytest.raises(OSError, match="disk gone"):
        list(streamed.epoch_batches(0, 0))
    gc.collect()
    assert not reader_threads()


def test_unknown_clean_labels_are_kept_as_given(tmp_path):
    path = make_chunked_h5(tmp_path / "chexpert.h5")
    noise = noise_for(path, has_clean=False)
    mem, streamed = both(path, noise, CROP_FLIP)
    for data in (mem, streamed):
        assert data.has_clean is False and data.val_has_clean is False
        assert not data.is_clean.any() and np.isnan(data.transition).all()
        assert (data.train_clean_labels == -1).all()
        assert (data.labels["val_clean"] == -1).all()
    legacy = {k: v for k, v in noise_for(path).items() if not k.endswith("has_clean")}
    assert open_data(path, legacy, CPU, CROP_FLIP, 8, True, log=print).has_clean is True


def test_medmnist_layout_streams_too(tiny_h5):
    """Unchunked (contiguous) images, one channel: the MedMNIST files."""
    noise = noise_for(tiny_h5)
    mem, streamed = both(tiny_h5, noise, {"crop_padding": 1, "hflip": True}, batch_size=32)
    for x, y in zip(mem.epoch_batches(0, 0), streamed.epoch_batches(0, 0)):
        assert torch.equal(x.x, y.x) and torch.equal(x.idx, y.idx)


def _force_streaming(monkeypatch, h5) -> list:
    """Make the trainer stream: through open_data's ``stream`` when the trainer uses it, else
    by handing it a StreamData where it builds its DeviceData. Returns the data it gets."""
    made = []
    if hasattr(trainer, "open_data"):
        real = trainer.open_data

        def forced(*a, **kw):
            made.append(real(*a, **{**kw, "stream": "always"}))
            return made[-1]

    else:

        def forced(ds, noise, dev, *a):
            made.append(StreamData(h5, noise, dev, *a))
            return made[-1]

    monkeypatch.setattr(
        trainer, "open_data" if hasattr(trainer, "open_data") else "DeviceData", forced
    )
    return made


@pytest.mark.parametrize(
    "method, params",
    [("ce", {}), ("dividemix", {"warmup_epochs": 1})],  # DivideMix indexes images directly
)
def test_a_streamed_training_run_equals_the_in_memory_run(tmp_path, monkeypatch, method, params):
    h5 = make_h5(tmp_path / "tiny.h5")
    kw = dict(epochs=2, h5=h5, params=params)
    loaded, _ = run_method(tmp_path, method, out="memory", **kw)
    with monkeypatch.context() as m:
        made = _force_streaming(m, h5)
        streamed, _ = run_method(tmp_path, method, out="stream", **kw)
    assert len(made) == 1 and isinstance(made[0], StreamData)
    drop = ("provenance",)
    assert {k: v for k, v in streamed.items() if k not in drop} == {
        k: v for k, v in loaded.items() if k not in drop
    }
    assert not reader_threads()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pinned_cuda_stream_equals_cuda_memory_and_cpu(chunked):
    h5, noise = chunked
    cuda = torch.device("cuda")
    kw = dict(augment=FUNDUS, batch_size=8, drop_last=False, log=lambda s: None)
    mem = open_data(h5, noise, cuda, stream="never", **kw)
    streamed = open_data(h5, noise, cuda, stream="always", **kw)
    assert streamed.pin
    for x, y in zip(mem.epoch_batches(0, 0), streamed.epoch_batches(0, 0)):
        assert x.raw.device.type == y.raw.device.type == "cuda"
        assert torch.equal(x.raw, y.raw) and torch.equal(x.x, y.x)
        assert torch.equal(x.idx, y.idx) and torch.equal(x.y, y.y)
    for x, y in zip(mem.eval_batches("test", 4), streamed.eval_batches("test", 4)):
        assert torch.equal(x, y)
    # the raw images and the random numbers do not depend on the device
    cpu = open_data(h5, noise, CPU, stream="always", **kw)
    for x, y in zip(cpu.epoch_batches(0, 0), streamed.epoch_batches(0, 0)):
        assert torch.equal(x.raw, y.raw.cpu()) and torch.equal(x.idx, y.idx.cpu())
        torch.testing.assert_close(x.x, y.x.cpu(), atol=1e-3, rtol=0)
