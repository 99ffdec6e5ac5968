"""The noise-pattern registry (lnm/noise/patterns, one file per pattern): what the workflow reads
statically is what the classes say, the codes that seed every noise file never change, and a
malformed registry is refused naming the file."""

from __future__ import annotations

import shutil
import textwrap

import numpy as np
import pytest

from lnm import grid
from lnm.noise.generate import make_noisy_labels
from lnm.noise.patterns import ClassConditional, get_pattern
from lnm.noise.spec import NoiseError
from tests.conftest import REPO

PATTERNS_DIR = REPO / "lnm" / "noise" / "patterns"

#: The code of every pattern: its index in the seeds of its random streams. Changing one changes
#: every noise file of that pattern (written by hand here: the files' bytes depend on it).
CODES = {
    "none": 0,
    "symmetric": 1,
    "pairflip": 2,
    "instance": 3,
    "instance_classifier": 4,
    "real": 5,
}


def test_pattern_codes_never_change():
    catalog = grid.pattern_catalog()
    assert {name: info.code for name, info in catalog.items() if name in CODES} == CODES
    assert len({info.code for info in catalog.values()}) == len(catalog)


def test_the_static_catalog_is_what_the_classes_say():
    for name, info in grid.pattern_catalog().items():
        pattern = get_pattern(name)
        assert type(pattern).__name__ == info.cls and type(pattern).__module__.endswith(
            f".patterns.{info.module}"
        )
        for trait in grid.PATTERN_TRAITS:
            assert getattr(pattern, trait) == getattr(info, trait), (name, trait)
        assert info.path.exists()


def test_the_grid_lists_derive_from_the_registry():
    catalog = grid.pattern_catalog()
    assert grid.PATTERNS == tuple(catalog)
    assert grid.PATTERNS[:5] == ("none", "symmetric", "pairflip", "instance", "instance_classifier")
    assert grid.PATTERNS[-1] == grid.REAL == "real" and grid.CLEAN == "none"
    assert grid.NOISY_PATTERNS == grid.PATTERNS[1:]
    assert grid.SYNTHETIC_PATTERNS == tuple(p for p in grid.PATTERNS if p not in ("none", "real"))
    traits = {n: (i.needs_images, i.needs_generator, tuple(i.params)) for n, i in catalog.items()}
    assert traits["instance"] == (True, False, ("instance_std",))
    assert traits["instance_classifier"] == (False, True, ("instance_std",))  # inherited key
    assert traits["symmetric"] == traits["none"] == traits["real"] == (False, False, ())


@pytest.mark.parametrize("pattern", ["symmetric", "pairflip"])
def test_a_class_conditional_draw_is_its_matrix_row_from_the_stream_of_its_code(pattern):
    """Transcribed independently: the train labels are ``sample_rows(T[y])`` with the uniforms
    of ``default_rng(SeedSequence([noise_seed, code, 0]))`` (val: stream 1)."""
    rng = np.random.default_rng(3)
    labels = {"train": rng.integers(0, 4, 500), "val": rng.integers(0, 4, 200)}
    r = make_noisy_labels(pattern, 0.3, 7, 4, labels)
    T = get_pattern(pattern).matrix(0.3, 4)
    for stream, split in enumerate(("train", "val")):
        u = np.random.default_rng(np.random.SeedSequence([7, CODES[pattern], stream])).random(
            len(labels[split])
        )
        cdf = np.cumsum(T[labels[split]], axis=1)
        cdf /= cdf[:, -1:]
        np.testing.assert_array_equal(r[f"{split}_noisy"], (cdf <= u[:, None]).sum(axis=1))
    np.testing.assert_array_equal(r["nominal_transition"], T)
    assert r["identifiable"] is get_pattern(pattern).identifiable(0.3, 4) is True


def test_traits_answer_what_the_if_chains_asked():
    assert get_pattern("none").is_clean and get_pattern("real").from_data
    assert get_pattern("none").matrix(0, 3).tolist() == np.eye(3).tolist()
    assert get_pattern("instance").matrix(0.4, 3) is None  # no nominal matrix
    assert get_pattern("instance").identifiable(0.4, 3) is None
    assert get_pattern("instance").expected_rate(0.8, 0.1) == pytest.approx(0.794, abs=5e-4)
    assert np.isnan(get_pattern("real").expected_rate(0.3, 0.1))
    assert isinstance(get_pattern("pairflip"), ClassConditional)
    with pytest.raises(NoiseError, match="unknown noise pattern 'symetric'"):
        get_pattern("symetric")


def registry(tmp_path, name: str, text: str):
    """A copy of lnm/noise/patterns with one more file, read by the static catalog."""
    folder = tmp_path / "patterns"
    shutil.copytree(PATTERNS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / f"{name}.py").write_text(textwrap.dedent(text))
    return folder


def test_a_new_pattern_file_is_found_with_its_inherited_traits(tmp_path):
    folder = registry(
        tmp_path,
        "wide_instance",
        """
        from .instance import Instance

        class WideInstance(Instance):
            name = "wide_instance"
            code = 6
            order = 35
        """,
    )
    catalog = grid.pattern_catalog(folder)
    assert list(catalog)[:5] == ["none", "symmetric", "pairflip", "instance", "wide_instance"]
    info = catalog["wide_instance"]
    assert info.needs_images and info.synthetic and info.params == catalog["instance"].params


@pytest.mark.parametrize(
    "file, text, needle",
    [
        (
            "twin",
            "class Twin:\n    name = 'twin'\n    code = 2\n",
            r"pairflip\.py and twin\.py both declare code 2; a new pattern takes a code no "
            r"pattern ever had, e.g. 6",
        ),
        (
            "sym2",
            "class S2:\n    name = 'symmetric'\n    code = 9\n",
            "'symmetric' is already used",
        ),
        ("nocode", "class NoCode:\n    name = 'nocode'\n", r"code None; allowed: an integer >= 0"),
        ("bad", "class Bad:\n    name = 'Bad-Name'\n    code = 9\n", "'Bad-Name' is not allowed"),
        (
            "clean2",
            "class Clean2:\n    name = 'clean2'\n    code = 9\n    is_clean = True\n",
            r"2 patterns declare is_clean = True \((clean2, none|none, clean2)\); exactly one",
        ),
    ],
)
def test_a_malformed_registry_is_refused_naming_the_file(tmp_path, file, text, needle):
    with pytest.raises(ValueError, match=needle):
        grid.pattern_catalog(registry(tmp_path, file, text))
