"""Which training-data path a run takes: every split's images held on the device
(:class:`lnm.train.data.DeviceData`) or streamed from the HDF5 file
(:class:`lnm.train.stream.StreamData`), by the images' size against a memory budget. Both give
identical batches for the same seed."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .data import GIB, SPLITS, STREAM_MODES, DeviceData
from .stream import StreamData


# ---------------------------------------------------------------------- choosing the path
def image_bytes(h5_path: str | Path, splits=SPLITS) -> dict[str, int]:
    """Bytes of each split's uint8 images, from the HDF5 shapes (nothing is read)."""
    from ..data.hdf5 import h5py  # sets HDF5_USE_FILE_LOCKING first

    with h5py.File(h5_path, "r") as h5:
        return {s: int(h5[s]["images"].nbytes) for s in splits}


def available_host_memory() -> int:
    """Bytes of physical memory available now: ``MemAvailable`` of /proc/meminfo (free plus
    reclaimable page cache), else free pages (``SC_AVPHYS_PAGES``), else all of it."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    page = os.sysconf("SC_PAGE_SIZE")
    for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return int(os.sysconf(name)) * page
        except (ValueError, OSError):
            continue
    raise RuntimeError("cannot tell the available memory; pass memory_budget_bytes")


def default_memory_budget(device: torch.device) -> int:
    """Half of the free memory of ``device``: CUDA ``mem_get_info``, else the host's
    :func:`available_host_memory`."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free) // 2
    return available_host_memory() // 2


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
):
    """The training data of ``h5_path``: a :class:`DeviceData` (every split's images loaded on
    ``device``) or a :class:`lnm.train.stream.StreamData` (images read from the file batch by
    batch, prefetched by a background thread).

    ``stream``: ``never`` (load), ``always`` (stream) or ``auto``: stream when the images of
    the three splits are larger than ``memory_budget_bytes`` (default
    :func:`default_memory_budget`). ``log`` gets one line saying which path and why (default:
    standard error). Both give identical batches for the same seed."""
    if stream not in STREAM_MODES:
        raise ValueError(f"stream = {stream!r}; allowed: {', '.join(STREAM_MODES)}")
    device = torch.device(device)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
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
    return DeviceData(load_h5(h5_path, check=False), noise, device, augment, batch_size, drop_last)
