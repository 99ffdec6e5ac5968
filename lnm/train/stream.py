"""Streaming training data: the images stay in the HDF5 file and are read batch by batch.

:class:`StreamData` has the interface of :class:`lnm.train.data.DeviceData` and gives the same
batches for the same seed: the epoch's permutation is drawn on the calling thread from the same
generator, a background thread reads the next batches' images (reading draws no random numbers)
and every augmentation happens on the calling thread, in the same order as in memory.

Reads. A batch's indices are sorted and de-duplicated, read as runs of consecutive rows with
``read_direct`` (the real-world files store one image per chunk, lzf-compressed, so one image is
one chunk), then put back into the batch's order (duplicates included) on the device. Only one
thread reads the file at a time (a lock per file handle: h5py is not safe for concurrent reads).
On CUDA the rows are read into pinned host memory and copied with ``non_blocking=True``; the
caching host allocator keeps a pinned buffer until its copy has finished.

Threads. Each ``epoch_batches``/``eval_batches`` generator starts one daemon reader thread when
it is first advanced; it stays at most ``prefetch`` batches (and ``prefetch_bytes``) ahead. When
the generator finishes, is closed, or is dropped early (a method breaking out of its loop), the
thread is told to stop and joined: no thread outlives its generator.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..data.hdf5 import h5py, load_h5  # (sets HDF5_USE_FILE_LOCKING before h5py is used)
from .data import SPLITS, Batch, TrainData, epoch_generator

#: Batches a reader thread reads ahead of the training loop.
PREFETCH = 3
#: Upper bound on the bytes of images read ahead (eval batches of large images are big).
PREFETCH_BYTES = 1 << 30
#: Name of the reader threads (tests look for leftovers by it).
THREAD_NAME = "lnm-stream-reader"
#: HDF5 chunk cache: room for this many of the largest chunks, between the bounds below.
CACHE_CHUNKS = 4
CACHE_MIN, CACHE_MAX = 1 << 20, 64 << 20


def runs(sorted_rows: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(first row, stop row, offset in ``sorted_rows``) of each run of consecutive rows."""
    if not len(sorted_rows):
        return
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(sorted_rows)]])
    for a, b in zip(starts.tolist(), stops.tolist()):
        yield int(sorted_rows[a]), int(sorted_rows[b - 1]) + 1, a


class Reader:
    """One read-only handle on an HDF5 file, used by one thread at a time (a lock)."""

    def __init__(self, path: str | Path, pin: bool):
        self.path, self.pin = Path(path), bool(pin)
        with h5py.File(self.path, "r") as h5:
            chunk = max(
                (
                    int(np.prod(h5[s]["images"].chunks)) * h5[s]["images"].dtype.itemsize
                    for s in SPLITS
                    if h5[s]["images"].chunks
                ),
                default=0,
            )
        cache = int(min(max(CACHE_CHUNKS * chunk, CACHE_MIN), CACHE_MAX))
        # w0 = 1: a chunk read in full is evicted first (every image is read once per pass)
        self.h5 = h5py.File(self.path, "r", rdcc_nbytes=cache, rdcc_nslots=521, rdcc_w0=1.0)
        self.lock = threading.Lock()
        self.datasets = {s: self.h5[s]["images"] for s in SPLITS}
        self.shapes = {s: tuple(d.shape) for s, d in self.datasets.items()}

    def _buffer(self, split: str, rows: int, capacity: int) -> torch.Tensor:
        shape = (max(capacity, rows), *self.shapes[split][1:])
        return torch.empty(shape, dtype=torch.uint8, pin_memory=self.pin)[:rows]

    def read_rows(self, split: str, idx: np.ndarray) -> tuple[torch.Tensor, np.ndarray | None]:
        """The NHWC rows ``idx`` (any order, duplicates allowed) of a split on the host, as the
        distinct rows in increasing order and the positions that put them back into ``idx``'s
        order (None when ``idx`` is already increasing and distinct)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        n = self.shapes[split][0]
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise IndexError(f"{self.path}: {split} image index {bad} outside 0..{n - 1}")
        rows, inverse = np.unique(idx, return_inverse=True)
        out = self._buffer(split, len(rows), len(idx))
        dest = out.numpy()
        with self.lock:
            ds = self.datasets[split]
            for first, stop, at in runs(rows):
                ds.read_direct(dest, np.s_[first:stop], np.s_[at : at + stop - first])
        ordered = len(rows) == len(idx) and (len(idx) < 2 or bool((np.diff(idx) > 0).all()))
        return out, None if ordered else inverse

    def read_slice(self, split: str, start: int, stop: int) -> tuple[torch.Tensor, None]:
        out = self._buffer(split, stop - start, stop - start)
        with self.lock:
            self.datasets[split].read_direct(
                out.numpy(), np.s_[start:stop], np.s_[0 : stop - start]
            )
        return out, None

    def close(self) -> None:
        with self.lock:
            if self.h5.id.valid:
                self.h5.close()


class Prefetcher:
    """Runs ``fn(job)`` for each job in order on a daemon thread (after ``init()``), at most
    ``depth`` results ahead; iterate to get the results (an exception in ``fn`` is raised
    here). ``close()`` stops and joins the thread (also when results are left unread)."""

    def __init__(
        self, fn: Callable, jobs: Iterable, depth: int, init: Callable[[], None] | None = None
    ):
        self._init = init
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=self._run, args=(fn, list(jobs)), name=THREAD_NAME, daemon=True
        )
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, fn, jobs) -> None:
        try:
            if self._init is not None:
                self._init()
            for job in jobs:
                if self._stop.is_set() or not self._put((True, fn(job))):
                    return
            self._put((None, None))  # the end
        except BaseException as err:  # handed to the consumer
            self._put((False, err))

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        ok, value = self._queue.get()
        if ok is None:
            self._done = True
            raise StopIteration
        if not ok:
            self._done = True
            raise value
        return value

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a reader waiting on a full queue and drop what it read
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()


class H5Images:
    """A split's images in the file: ``len()`` and indexing by an index tensor, array, list,
    slice or int → uint8 NCHW (CHW for an int) on the device, read on the calling thread."""

    def __init__(self, data: StreamData, split: str):
        self.data, self.split = data, split
        n, h, w, c = data.reader.shapes[split]
        self.shape = (n, c, h, w)
        self.dtype = torch.uint8
        self.device = data.device

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        reader = self.data.reader
        if isinstance(index, (int, np.integer)):
            i = int(index) + (len(self) if index < 0 else 0)
            return self.data.to_device(*reader.read_rows(self.split, np.array([i])))[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self.data.to_device(*reader.read_slice(self.split, start, max(start, stop)))
            index = np.arange(start, stop, step)
        if isinstance(index, torch.Tensor):
            if index.dtype == torch.bool:
                index = torch.nonzero(index).squeeze(1)
            index = index.cpu().numpy()
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = np.where(index < 0, index + len(self), index)
        return self.data.to_device(*reader.read_rows(self.split, index))


class StreamData(TrainData):
    """The interface of :class:`lnm.train.data.DeviceData` with the images left in the HDF5 file
    (see the module docstring); labels are on the device as there."""

    def __init__(
        self,
        h5_path: str | Path,
        noise: dict,
        device: torch.device,
        augment: dict,
        batch_size: int,
        drop_last: bool = True,
        *,
        prefetch: int = PREFETCH,
        prefetch_bytes: int = PREFETCH_BYTES,
    ):
        device = torch.device(device)
        self.path = Path(h5_path)
        self.pin = device.type == "cuda"
        self.prefetch, self.prefetch_bytes = max(1, int(prefetch)), int(prefetch_bytes)
        self.reader = Reader(self.path, self.pin)
        # the reader threads allocate pinned memory: on the training device's CUDA context
        # (a new thread's current device is cuda:0, which would get a context of its own)
        self._thread_init = None
        if self.pin:
            index = device.index if device.index is not None else torch.cuda.current_device()
            self._thread_init = lambda: torch.cuda.set_device(index)
        meta = load_h5(self.path, check=False, image_splits=())  # labels and attrs only
        self._setup(meta.attrs, meta.labels["test"], noise, device, augment, batch_size, drop_last)
        self.images = {s: H5Images(self, s) for s in SPLITS}

    def close(self) -> None:
        """Close the file (the object is unusable afterwards)."""
        self.reader.close()

    def __del__(self):
        try:
            self.reader.close()
        except Exception:  # interpreter shutdown
            pass

    def to_device(self, host: torch.Tensor, inverse: np.ndarray | None) -> torch.Tensor:
        """Host NHWC rows (and the positions putting them in order) → uint8 NCHW on the device,
        contiguous like the in-memory tensors."""
        x = host.to(self.device, non_blocking=True) if self.device.type != "cpu" else host
        if inverse is not None:
            x = x[torch.from_numpy(inverse).to(self.device, non_blocking=True)]
        return x.permute(0, 3, 1, 2).contiguous()

    def _depth(self, split: str, rows: int) -> int:
        _, h, w, c = self.reader.shapes[split]
        return max(1, min(self.prefetch, self.prefetch_bytes // max(1, rows * h * w * c)))

    def epoch_batches(
        self, seed: int, epoch: int, stream: int = 0, batch_size: int | None = None
    ) -> Iterator[Batch]:
        """Shuffled training batches for one epoch (same (seed, epoch) → same batches, equal to
        :meth:`lnm.train.data.DeviceData.epoch_batches`')."""
        gen = epoch_generator(seed, epoch, stream)
        n = self.num_train
        b = min(batch_size or self.batch_size, n)
        perm_host = torch.randperm(n, generator=gen)
        perm = perm_host.to(self.device)
        stop = n - n % b if self.drop_last else n
        starts = range(0, stop, b)
        order = perm_host.numpy()
        jobs = [order[start : start + b] for start in starts]
        reads = Prefetcher(
            lambda rows: self.reader.read_rows("train", rows),
            jobs,
            self._depth("train", b),
            self._thread_init,
        )
        try:
            for start, host in zip(starts, reads):
                idx = perm[start : start + b]
                raw = self.to_device(*host)
                yield Batch(
                    idx, self.augmenter(raw, gen), self.train_labels[idx], raw, self.augmenter, gen
                )
        finally:
            reads.close()

    def eval_batches(self, split: str, batch_size: int = 512) -> Iterator[torch.Tensor]:
        """Unaugmented, normalised images of a split, in order."""
        n = len(self.images[split])
        jobs = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        reads = Prefetcher(
            lambda job: self.reader.read_slice(split, *job),
            jobs,
            self._depth(split, batch_size),
            self._thread_init,
        )
        try:
            for host in reads:
                yield self.augmenter.normalize(self.to_device(*host))
        finally:
            reads.close()
