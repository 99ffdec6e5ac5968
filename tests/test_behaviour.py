"""Method behaviour on a small synthetic image problem with 40 % symmetric noise (CPU).

300 noisy training images of a weak-signal 3-class problem, 20 epochs, one Adam recipe for all:
long enough for CE to start fitting the wrong labels (its test accuracy wobbles between 82 and
94 % after epoch 3). The selection methods must trust mostly clean samples (clean ratio above
1 − 0.4 = 60 %, what a random selection would get) and end at least as accurate as CE. Seeds are
fixed, so the numbers are deterministic on a given CPU and torch version.
"""

import pytest

from tests.conftest import make_h5, run_method

SELECTION = {  # selection starts after 3 epochs (the reference schedules scaled to 20 epochs)
    "coteaching": {"num_gradual": 3},
    "coteaching_plus": {"num_gradual": 3, "init_epoch": 3, "warm_steps": 30},
    "codis": {"num_gradual": 3},
    "jocor": {"num_gradual": 3},
    "disc": {"start_epoch": 3, "momentum": 0.8},
    "dividemix": {"warmup_epochs": 3, "rampup_epochs": 3, "warmup_batch_mult": 1},
}
EPOCHS = 20
RECIPE = dict(optimizer={"name": "adam", "lr": 0.003}, batch_size=32)


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("behaviour")
    h5 = make_h5(
        tmp / "tiny.h5", n=(300, 100, 300), num_classes=3, size=8, seed=3, signal=30, noise=120
    )
    ce, _ = run_method(tmp, "ce", epochs=EPOCHS, h5=h5, out="ce", **RECIPE)
    return tmp, h5, ce


@pytest.mark.parametrize("method", list(SELECTION))
def test_selection_methods_trust_clean_samples_and_beat_ce(problem, method):
    tmp, h5, ce = problem
    m, _ = run_method(
        tmp, method, epochs=EPOCHS, h5=h5, out=method, params=SELECTION[method], **RECIPE
    )
    assert m["selection"]["clean_ratio"] > 60.0, m["selection"]
    assert m["test_acc_last_k"] >= ce["test_acc_last_k"], (
        m["test_acc_last_k"],
        ce["test_acc_last_k"],
    )
