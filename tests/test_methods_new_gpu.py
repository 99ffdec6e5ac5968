"""The five new methods on a CUDA device with bf16 autocast (channels-last networks, float32
per-sample state): a few epochs past their phase changes, finite, and a kill-and-resume that
matches the uninterrupted run. Skipped without a GPU (CI has none); run on a GPU machine with
``pytest -m "gpu" tests/test_methods_new_gpu.py``."""

import pytest
import torch

from tests.methods_new_common import resume_matches

CONFIGS = {
    "gce": {"truncated": True, "k": 0.34, "start_prune": 2, "prune_every": 2},
    "elr": {"plus": True, "warmup_epochs": 1, "ema_step": 20},
    "sop": {"ratio_consistency": 0.9, "ratio_balance": 0.1},
    "promix": {"pretrain_ep": 1, "warmup_ep": 2, "start_expand": 2, "tau": 0.6},
    "cocorrecting": {"forget_rate": 0.3, "num_gradual": 1, "stage1": 1, "stage2": 3},
}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible here)")
@pytest.mark.parametrize("method", list(CONFIGS))
def test_new_method_trains_and_resumes_on_cuda_in_bf16(tmp_path, method, monkeypatch):
    from tests import conftest, methods_new_common

    run = conftest.run_method

    def on_cuda(*a, **kw):
        return run(*a, **{**kw, "device_override": "cuda", "precision": "bf16"})

    monkeypatch.setattr(methods_new_common, "run_method", on_cuda)
    curve = resume_matches(tmp_path, method, CONFIGS[method])
    assert curve["train_loss"].notna().all() and (curve["test_acc"] > 0).all()
