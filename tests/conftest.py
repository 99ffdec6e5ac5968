import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lnm.data.hdf5 import write_h5

REPO = Path(__file__).resolve().parent.parent
#: The real MedMNIST files the tests use offline: $LNM_RAW_DIR, else ../shared/data/medmnist
#: beside the repository (CI lays shared/ there); tests that need them skip without them.
SHARED_MEDMNIST = Path(
    os.environ.get("LNM_RAW_DIR") or REPO.parent / "shared" / "data" / "medmnist"
).expanduser()


#: A folder put first on PATH for the whole session, holding a stand-in ``scontrol`` that fails at
#: once. Snakemake imports every installed executor plugin at start-up, and the SLURM plugin
#: (2.8.0) then runs ``scontrol show config``; where the SLURM client is installed but no
#: controller answers (this machine kind once the SLURM test has installed it), that waits 9 s
#: for its timeout, in every Snakemake command of every test. The plugin treats a failing
#: ``scontrol`` exactly as a missing one (no recommendation in its help text); no test but the
#: SLURM test uses SLURM, and that one takes the folder off PATH again (:data:`NO_SLURM_PATH`).
NO_SLURM_PATH = Path(__file__).resolve().parent / "no_slurm"


@pytest.fixture(scope="session", autouse=True)
def _no_slurm_probe():
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{NO_SLURM_PATH}{os.pathsep}{path}"
    yield
    os.environ["PATH"] = path


def make_h5(
    path: Path, n=(96, 32, 48), num_classes=3, size=8, channels=1, seed=0, signal=150, noise=60
) -> Path:
    """A tiny learnable dataset in the layout of lnm.data.hdf5: class c brightens band c."""
    rng = np.random.default_rng(seed)
    images, labels = {}, {}
    for split, count in zip(("train", "val", "test"), n):
        labels[split] = y = rng.integers(0, num_classes, count)
        x = rng.integers(0, noise, (count, size, size, channels))
        for c in range(num_classes):
            rows = slice(c * size // num_classes, (c + 1) * size // num_classes)
            x[y == c, rows] += signal
        images[split] = x.clip(0, 255).astype(np.uint8)
    write_h5(path, images, labels, dataset="synthetic",
             classes=[f"c{i}" for i in range(num_classes)], source_md5="0" * 32,
             mean=np.full(channels, 0.35), std=np.full(channels, 0.3))  # fmt: skip
    return path


def benchmark(name: str):
    """The script ``benchmarks/<name>.py`` imported as a module (its folder on ``sys.path``, as
    when it runs)."""
    folder = str(REPO / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def check_png(path, figsize):
    """A verified figure of ``figsize`` inches at the report's DPI that is not a blank canvas."""
    import matplotlib.image as mpimg

    from lnm.checksum import verify
    from lnm.report import figures

    verify(path)
    img = mpimg.imread(path)
    assert img.shape[:2] == (round(figsize[1] * figures.DPI), round(figsize[0] * figures.DPI))
    assert img[..., :3].std() > 0.01  # not a blank canvas


@pytest.fixture
def tiny_h5(tmp_path):
    return make_h5(tmp_path / "tiny.h5")


@pytest.fixture
def shared_medmnist():
    if not (SHARED_MEDMNIST / "breastmnist.npz").exists():
        pytest.skip(f"real MedMNIST files not found at {SHARED_MEDMNIST}")
    return SHARED_MEDMNIST


#: Defaults of the hand-built specs of unit tests (a config gives every value of a real run).
TINY_SPEC = dict(
    dataset="synthetic",
    size=8,
    noise="symmetric",
    rate=0.4,
    noise_seed=0,
    method="ce",
    backbone="resnet8",
    seed=0,
    pretrained=False,
    epochs=10,
    batch_size=128,
    optimizer={"name": "sgd", "lr": 0.01},
    schedule={"name": "constant"},
    augment={"crop_padding": 4, "hflip": True},
    drop_last=True,
    last_k=2,
    eval_view="softmax_mean",
    precision="bf16",
    method_params={},
)


def tiny_spec(**kw):
    """A RunSpec for unit tests: :data:`TINY_SPEC` updated with ``kw``."""
    from lnm.train.spec import RunSpec

    return RunSpec(**{**TINY_SPEC, **kw})


#: The tiny training recipe of the method and trainer tests.
TINY_RUN = dict(
    batch_size=32,
    optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
    augment={"crop_padding": 1, "hflip": True},
)


def tiny_problem(tmp_path, noise: str = "symmetric", rate: float = 0.4, h5: Path | None = None):
    """The tiny synthetic HDF5 of :func:`make_h5` and its noise file (made once per folder)."""
    from lnm.noise.generate import generate_noise_file

    h5 = h5 or tmp_path / "tiny.h5"
    if not h5.exists():
        make_h5(h5)
    npz = tmp_path / f"noise-{noise}-{rate}.npz"
    if not npz.exists():
        generate_noise_file(h5, npz, noise, rate, 0)
    return h5, npz


def tiny_method(tmp_path, method: str, epochs: int = 3, params=None, seed: int = 0, **spec_kw):
    """A method instance (CPU, ResNet-8) on the tiny problem, and its DeviceData."""
    import torch

    from lnm.data.hdf5 import load_h5
    from lnm.methods import get_method
    from lnm.models import build_model
    from lnm.noise.io import load_noise
    from lnm.train.data import DeviceData

    h5, npz = tiny_problem(tmp_path)
    spec = tiny_spec(
        method=method, epochs=epochs, method_params=params or {}, **{**TINY_RUN, **spec_kw}
    )
    cpu = torch.device("cpu")
    data = DeviceData(
        load_h5(h5, check=False), load_noise(npz, check=False), cpu, spec.augment,
        spec.batch_size, spec.drop_last,
    )  # fmt: skip
    torch.manual_seed(seed)
    c = data.num_classes
    return get_method(method)(spec, lambda: build_model("resnet8", 1, c, 8), c, cpu, data), data


def run_method(
    tmp_path,
    method: str,
    epochs: int = 3,
    noise: str = "symmetric",
    rate: float = 0.4,
    params: dict | None = None,
    log=None,
    out: str = "run",
    h5: Path | None = None,
    device_override: str = "cpu",
    **spec_kw,
):
    """Train ``method`` on the tiny problem through the trainer; returns (metrics, out_dir)."""
    from lnm.train.trainer import train_run

    h5, npz = tiny_problem(tmp_path, noise, rate, h5)
    kw = dict(noise=noise, rate=rate, method=method, epochs=epochs, method_params=params or {})
    kw.update({**TINY_RUN, **spec_kw})
    out_dir = tmp_path / out
    metrics = train_run(
        tiny_spec(**kw), h5, npz, out_dir, device=device_override, log=log or (lambda s: None)
    )
    return metrics, out_dir


#: every rule but download and preprocess (the synthetic tests supply the HDF5 themselves)
SYNTHETIC_RULES = [
    "noise",
    "train",
    "aggregate",
    "statistics",
    "diagnostics",
    "run_metadata",
    "figure_acc_vs_rate",
    "figure_ranking",
    "figure_selection",
    "figure_cd_diagram",
    "figure_recall",
    "reproduction",
    "manifest",
    "all",
]


def snakemake(*args, check=True, cwd=REPO) -> subprocess.CompletedProcess:
    """Run the workflow on the smoke preset (plus ``args``) in a subprocess."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "--configfile",
        str(REPO / "presets" / "smoke.yaml"),
        *args,
    ]
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}
    )
    if check and proc.returncode:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def synthetic_results(res: Path, n=(128, 40, 60)) -> Path:
    """A synthetic 3-class "pathmnist" in the results folder ``res`` and the record the download
    step would have written for it (pointing at it); returns the HDF5 file."""
    from lnm.checksum import verify, write_text

    h5 = make_h5(res / "data" / "pathmnist_28.h5", n=n, size=28, num_classes=3)
    record = {"dataset": "pathmnist", "size": 28, "path": str(h5), "md5": "synthetic",
              "sha256": verify(h5), "bytes": h5.stat().st_size}  # fmt: skip
    write_text(res / "raw" / "pathmnist_28.json", json.dumps(record))
    return h5


@pytest.fixture(scope="session")
def synthetic_smoke(tmp_path_factory):
    """The smoke preset run once on a synthetic 3-class "pathmnist" made here; (results, args)."""
    res = tmp_path_factory.mktemp("synthetic") / "results"
    synthetic_results(res)
    cfg = [
        "--config",
        f"results={res}",
        "datasets=[pathmnist]",
        "--allowed-rules",
        *SYNTHETIC_RULES,
    ]
    proc = snakemake(*cfg)
    assert "rule download" not in proc.stdout + proc.stderr
    return res, cfg
