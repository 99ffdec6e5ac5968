"""Which training-data path a run takes: every split's images held on the device
(:class:`lnm.train.data.DeviceData`) or streamed from the HDF5 file
(:class:`lnm.train.stream.StreamData`), by the images' size against a memory budget. Both give
identical batches for the same seed.

Runs trained one after another in one process (:func:`lnm.train.pack.train_runs`) share a
:class:`SharedInputs`: each input file is hashed once, and the images of a data file are loaded
onto the device once and then used by every run on that file and device."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from ..checksum import sidecar, verify
from ..gpu import jobs_per_device
from ..grid import STREAM_MODES  # open_data's choices of path (runtime.stream)
from .data import GIB, SPLITS, DeviceData, nchw_images
from .stream import StreamData


# ---------------------------------------------------------------------- shared by several runs
def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SharedInputs:
    """What consecutive runs of one process share (:func:`lnm.train.pack.train_runs`).

    - :meth:`verify`: an input file's SHA-256, checked against its sidecar once per version of
      the file and of its sidecar (device, inode, size and modification time of both);
    - the images of one data file on one device: :func:`open_data` loads them once per key
      (the file, its SHA-256, the device) and hands every later run with that key the same
      tensors (runs only read them). One key is held at a time: loading another file drops
      them first.

    ``loads`` and ``reuses`` count the image loads and the runs that reused held images.
    Labels, noisy labels and all else of a run stay the run's own."""

    def __init__(self):
        self.loads = 0
        self.reuses = 0
        self._digests: dict[tuple, str] = {}
        self._held: tuple | None = None  # (key, labels-and-attrs Dataset, device tensors)

    def verify(self, path: str | Path) -> str:
        """:func:`lnm.checksum.verify`, computed once per version of the file and its sidecar."""
        path = Path(path)
        try:
            key = (str(path.resolve()), _stat_key(path), _stat_key(sidecar(path)))
        except OSError:
            return verify(path)  # a missing file or sidecar: verify says which
        if key not in self._digests:
            self._digests[key] = verify(path)
        return self._digests[key]

    @staticmethod
    def key(h5_path: str | Path, sha256: str, device: torch.device) -> tuple:
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return (str(Path(h5_path).resolve()), sha256, str(device))

    def images(self, key: tuple):
        """(the file's labels and attributes as a :class:`lnm.data.hdf5.Dataset` without
        images, a copy of the run's own; the held device tensors) for ``key``, or None."""
        if self._held is None or self._held[0] != key:
            return None
        self.reuses += 1
        return copy.deepcopy(self._held[1]), self._held[2]

    def hold(self, key: tuple, dataset, images: dict[str, torch.Tensor]) -> None:
        """Keep ``images`` (the device tensors of ``dataset``'s images) for later runs."""
        meta = copy.copy(dataset)
        meta.images = {}
        self._held = (key, copy.deepcopy(meta), images)
        self.loads += 1

    def drop_images(self, device: torch.device | None = None) -> None:
        """Drop the held images; on CUDA also hand the blocks cached by earlier runs back to
        the driver, so that a memory budget computed next sees what a fresh process would."""
        self._held = None
        if device is not None and torch.device(device).type == "cuda":
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------- choosing the path
def image_bytes(h5_path: str | Path, splits=SPLITS) -> dict[str, int]:
    """Bytes of each split's uint8 images, from the HDF5 shapes (nothing is read)."""
    from ..data.hdf5 import h5py  # sets HDF5_USE_FILE_LOCKING first

    with h5py.File(h5_path, "r") as h5:
        return {s: int(h5[s]["images"].nbytes) for s in splits}


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (cgroup v2): no limit


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def cgroup_memory_available(
    root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup"
) -> int | None:
    """Bytes this process's memory cgroup (and every cgroup above it) still lets it use:
    the smallest ``limit - usage + inactive page cache`` (reclaimable) over them; None when no
    limit applies. A SLURM job's ``--mem`` (the train rule's ``mem_mb``) and a container's
    memory limit are such limits, far below the machine's free memory. cgroup v2
    (``memory.max``, ``memory.current``) and v1 (``memory.limit_in_bytes``, ...)."""
    root = Path(root)
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # v2 unified hierarchy
            base, files = root, ("memory.max", "memory.current", "memory.stat", "inactive_file")
        elif "memory" in controllers.split(","):
            base = root / "memory"
            files = (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "memory.stat",
                "total_inactive_file",
            )
        else:
            continue
        d = base / rel.lstrip("/")
        while True:
            limit = _read_int(d / files[0])
            if limit is not None and limit < (1 << 60):  # v1 writes a huge number for none
                used = _read_int(d / files[1]) or 0
                free = max(0, limit - used + _stat_value(d / files[2], files[3]))
                best = free if best is None else min(best, free)
            if d == base or base not in d.parents:
                break
            d = d.parent
    return best


def available_host_memory() -> int:
    """Bytes of physical memory available now: ``MemAvailable`` of /proc/meminfo (free plus
    reclaimable page cache), else free pages (``SC_AVPHYS_PAGES``), else all of it; never more
    than the process's memory cgroup still allows (:func:`cgroup_memory_available`)."""
    found = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        page = os.sysconf("SC_PAGE_SIZE")
        for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
            try:
                found = int(os.sysconf(name)) * page
                break
            except (ValueError, OSError):
                continue
    cgroup = cgroup_memory_available()
    if found is None and cgroup is None:
        raise RuntimeError("cannot tell the available memory; pass memory_budget_bytes")
    return min(v for v in (found, cgroup) if v is not None)


def default_memory_budget(device: torch.device) -> int:
    """The memory the images of a run may take on ``device``: half of its share of the device.

    On CUDA the share is the GPU's total memory divided by the jobs that may share it
    (:func:`lnm.gpu.jobs_per_device`, ``resources.gpu_slots_per_device``), and never more
    than the memory free now (``mem_get_info``): with two slots each job budgets a quarter of
    the GPU, not half of what happens to be free when it starts. On a CPU: the host's
    :func:`available_host_memory` (the job's cgroup limit included). Loading images onto a
    GPU takes host memory for one chunk only (:func:`lnm.train.data.nchw_images`)."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return min(int(free), int(total) // jobs_per_device()) // 2
    return available_host_memory() // 2


def load_images(h5_path: str | Path, device: torch.device, splits=SPLITS) -> dict:
    """Every split's images of ``h5_path`` as uint8 NCHW tensors on ``device``, read and moved
    chunk by chunk (:func:`lnm.train.data.nchw_images`): no host copy of the images beside
    the result (on a GPU, none at all)."""
    from ..data.hdf5 import h5py  # sets HDF5_USE_FILE_LOCKING first

    with h5py.File(h5_path, "r") as h5:
        return {s: nchw_images(h5[s]["images"], device) for s in splits}


def open_data(
    h5_path: str | Path,
    noise: dict,
    device: torch.device,
    augment: dict,
    batch_size: int,
    drop_last: bool,
    *,
    stream: str = "auto",
    memory_budget_bytes: int | None = None,
    log: Callable[[str], None] | None = None,
    shared: SharedInputs | None = None,
    sha256: str | None = None,
):
    """The training data of ``h5_path``: a :class:`DeviceData` (every split's images loaded on
    ``device``) or a :class:`lnm.train.stream.StreamData` (images read from the file batch by
    batch, prefetched by a background thread).

    ``stream``: ``never`` (load), ``always`` (stream) or ``auto``: stream when the images of
    the three splits are larger than ``memory_budget_bytes`` (default
    :func:`default_memory_budget`). ``log`` gets one line saying which path and why (default:
    standard error). Both give identical batches for the same seed.

    ``shared`` (with the file's ``sha256``): images an earlier run of this process loaded onto
    ``device`` are used as they are (whatever ``auto`` would decide now: they are already
    there); images loaded here are held for later runs. Streamed data is never shared."""
    if stream not in STREAM_MODES:
        raise ValueError(f"stream = {stream!r}; allowed: {', '.join(STREAM_MODES)}")
    device = torch.device(device)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    key = None
    if shared is not None and stream != "always":
        if sha256 is None:
            raise ValueError("open_data: shared images need the data file's sha256")
        key = shared.key(h5_path, sha256, device)
        held = shared.images(key)
        if held is not None:
            meta, images = held
            log(
                f"data: reusing the images of {Path(h5_path).name} already in {device.type} "
                "memory (loaded by an earlier run of this process)"
            )
            return DeviceData(meta, noise, device, augment, batch_size, drop_last, images=images)
        shared.drop_images(device)
    sizes = image_bytes(h5_path)
    total = sum(sizes.values())
    budget = memory_budget_bytes
    if budget is None and stream == "auto":
        budget = default_memory_budget(device)
    where = f"{device.type} memory" if device.type == "cuda" else "host memory"
    size_text = (
        f"{total / GIB:.2f} GiB of images (train {sizes['train'] / GIB:.2f}, val "
        f"{sizes['val'] / GIB:.2f}, test {sizes['test'] / GIB:.2f})"
    )
    budget_text = "" if budget is None else f"the budget of {budget / GIB:.2f} GiB of {where}"
    if stream == "always" or (stream == "auto" and total > budget):
        why = "stream=always" if stream == "always" else f"larger than {budget_text}"
        data = StreamData(h5_path, noise, device, augment, batch_size, drop_last)
        log(
            f"data: streaming {Path(h5_path).name} from disk ({size_text}; {why}); batches "
            f"read by a background thread, {data.prefetch} ahead"
            + (", into pinned memory" if data.pin else "")
        )
        return data
    from ..data.hdf5 import load_h5

    if stream == "never":
        why = "stream=never" + (
            f", although larger than {budget_text}" if budget is not None and total > budget else ""
        )
    else:
        why = f"within {budget_text}"
    log(f"data: loading {Path(h5_path).name} into {device.type} memory ({size_text}; {why})")
    dataset = load_h5(h5_path, check=False, image_splits=())  # labels and attributes
    images = load_images(h5_path, device)
    data = DeviceData(dataset, noise, device, augment, batch_size, drop_last, images=images)
    if key is not None:
        shared.hold(key, dataset, data.images)
    return data
