"""The vocabulary (lnm.grid) and the code inputs (lnm.codedeps): one source for every name,
read without torch; code inputs = the import closure of what a rule runs."""

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lnm import grid
from lnm.codedeps import closure, code_digest
from tests.conftest import REPO

LNM = REPO / "lnm"

#: Which shared helper modules LNMBench's and issue 24's methods run (hand-written: a wrong
#: closure or a wrong derivation fails here); a method added later is checked by its imports.
KNOWN_HELPERS = {
    "_selection.py": {"coteaching", "coteaching_plus", "codis", "jocor", "cocorrecting"},
    "_transition.py": {"trevision", "volminnet"},
    "_gmm.py": {"dividemix"},
    "_mixup.py": {"disc", "dividemix", "elr", "promix"},
    "_losses.py": {"disc", "gce"},
    "_randaugment.py": {"disc", "sop", "promix"},
    "_persample.py": {"gce", "elr", "sop", "cocorrecting"},
    "_features.py": {"promix", "cocorrecting"},
    "_fmix.py": {"promix"},
}
KNOWN_METHODS = ("ce", "trevision", "volminnet", "sce", "cdr", "coteaching", "coteaching_plus",
                 "codis", "jocor", "disc", "dividemix", "gce", "elr", "sop", "promix",
                 "cocorrecting")  # fmt: skip


def _local_imports(path: Path) -> set[str]:
    """The modules of lnm/methods a file imports, anywhere in it (``from .x import``,
    ``from .x.y import``, ``from . import x``), read with ``ast``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            found |= {f"{n}.py" for n in names if (LNM / "methods" / f"{n}.py").exists()}
    return found


def method_helpers() -> dict[str, set[str]]:
    """Per helper module of lnm/methods (``_*.py``), the methods of the catalog that import it,
    directly or through other modules of lnm/methods (a subclass through its parent's file):
    derived from the files, so a new method file needs no entry."""
    imports = {p.name: _local_imports(p) for p in (LNM / "methods").glob("*.py")}
    users: dict[str, set[str]] = {
        h: set() for h in imports if h.startswith("_") and h != "__init__.py"
    }
    for m in grid.methods():
        todo, seen = {grid.method_info(m).path.name}, set()
        while todo:
            seen.add(f := todo.pop())
            todo |= imports[f] - seen
        for h in seen & set(users):
            users[h].add(m)
    return users


HELPERS = method_helpers()


def test_the_helper_map_derived_from_imports_is_the_hand_written_one():
    assert set(HELPERS) == set(KNOWN_HELPERS)
    for helper, users in HELPERS.items():
        assert users & set(KNOWN_METHODS) == KNOWN_HELPERS[helper], helper


def train_closure(method: str) -> set[str]:
    info = grid.method_info(method)
    files = closure([REPO / "workflow_scripts" / "train.py", info.path], LNM)
    return {p.relative_to(REPO).as_posix() for p in files}


def test_static_catalog_matches_the_imported_classes():
    from lnm.methods import REGISTRY

    catalog = grid.method_catalog()
    assert list(catalog) == list(REGISTRY) == list(grid.methods())
    assert set(KNOWN_METHODS) <= set(catalog)  # no method is counted: a new file is welcome
    for name, info in catalog.items():
        cls = REGISTRY[name]
        assert (cls.name, cls.__name__, cls.num_nets) == (name, info.cls, info.num_nets)
        for trait in grid.METHOD_TRAITS:  # the class as imported has the traits read statically
            assert getattr(cls, trait) == getattr(info, trait), (name, trait)
        assert cls.defaults == info.defaults and cls.params == info.params
        assert cls.__module__ == f"lnm.methods.{info.module}"
    assert [catalog[m].order for m in catalog] == sorted(catalog[m].order for m in catalog)


def test_every_method_param_declares_a_type_and_a_valid_default():
    import jsonschema

    for name, info in grid.method_catalog().items():
        assert info.params, name
        for key, spec in info.params.items():
            assert "type" in spec or "enum" in spec, (name, key)
            jsonschema.validate(spec["default"], {k: v for k, v in spec.items() if k != "default"})


def test_a_new_method_is_one_file(tmp_path, monkeypatch):
    """One more method: one new file, found with its params and inherited traits, ordered after
    the others."""
    methods = tmp_path / "methods"
    shutil.copytree(LNM / "methods", methods, ignore=shutil.ignore_patterns("__pycache__"))
    (methods / "mymethod.py").write_text(
        textwrap.dedent("""
        from ._selection import SmallLossMethod

        class MyMethod(SmallLossMethod):
            name = "mymethod"
            params = {**SmallLossMethod.params, "extra": {"default": 2, "type": "integer"}}
        """)
    )
    before = list(grid.method_catalog())
    monkeypatch.setattr(grid, "METHODS_DIR", methods)
    grid.method_catalog.cache_clear()
    try:
        catalog = grid.method_catalog()
        assert set(catalog) == {*before, "mymethod"}  # after every method with an order:
        assert list(catalog).index("mymethod") > max(map(list(catalog).index, KNOWN_METHODS))
        info = catalog["mymethod"]
        assert info.num_nets == 2  # inherited from SmallLossMethod
        assert (info.ramp, info.reports, info.phases) == ("num_gradual", ("selected",), (
            {"name": "train"},))  # fmt: skip
        assert info.defaults == {
            "forget_rate": None,
            "num_gradual": 10,
            "exponent": 1.0,
            "extra": 2,
        }
    finally:
        grid.method_catalog.cache_clear()


def test_a_duplicate_method_name_is_refused(tmp_path, monkeypatch):
    methods = tmp_path / "methods"
    shutil.copytree(LNM / "methods", methods, ignore=shutil.ignore_patterns("__pycache__"))
    (methods / "ce2.py").write_text("class CE2:\n    name = 'ce'\n")
    monkeypatch.setattr(grid, "METHODS_DIR", methods)
    grid.method_catalog.cache_clear()
    try:
        with pytest.raises(
            ValueError, match=r"ce2\.py, class CE2: method name 'ce' is already used"
        ):
            grid.method_catalog()
    finally:
        grid.method_catalog.cache_clear()


@pytest.mark.parametrize("helper", list(HELPERS))
def test_a_helper_module_is_a_code_input_of_exactly_the_methods_that_import_it(helper):
    users = {m for m in grid.methods() if f"lnm/methods/{helper}" in train_closure(m)}
    assert users == HELPERS[helper]


def test_train_closure_holds_the_trainer_and_not_other_methods():
    files = train_closure("coteaching")
    assert {"lnm/train/trainer.py", "lnm/methods/base.py", "lnm/methods/coteaching.py"} <= files
    assert {"lnm/grid.py", "workflow_scripts/train.py", "lnm/methods/__init__.py"} <= files
    assert not {f"lnm/methods/{m}.py" for m in grid.methods() if m != "coteaching"} & files
    assert not {f for f in files if f.startswith("lnm/report/")}


def test_closure_follows_relative_and_function_level_imports(tmp_path):
    pkg = tmp_path / "lnm"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (pkg / "c.py").write_text("import os\n")
    (pkg / "unused.py").write_text("")
    entry = tmp_path / "script.py"
    entry.write_text("from lnm.sub.a import x\n")
    got = {p.relative_to(tmp_path).as_posix() for p in closure([entry], pkg)}
    assert got == {
        "script.py",
        "lnm/__init__.py",
        "lnm/sub/__init__.py",
        "lnm/sub/a.py",
        "lnm/sub/b.py",
        "lnm/c.py",
    }


def test_code_digest_follows_content_not_location(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "lnm").mkdir(parents=True)
        (root / "lnm" / "x.py").write_text("X = 1\n")
    da = code_digest([a / "lnm" / "x.py"], a)
    assert da == code_digest([b / "lnm" / "x.py"], b)
    (b / "lnm" / "x.py").write_text("X = 2\n")
    assert da != code_digest([b / "lnm" / "x.py"], b)


def _module_imports():
    """lnm module -> lnm modules it imports anywhere (module level or inside functions)."""
    from lnm.codedeps import _imports, _module_file, _module_name

    graph = {}
    for path in LNM.rglob("*.py"):
        name = _module_name(LNM, path)
        deps = set()
        for mod in _imports(LNM, path):
            if _module_file(LNM, mod) is not None and mod != name:
                deps.add(mod)
        graph[name] = deps
    return graph


def test_the_package_import_graph_has_no_cycles():
    graph = _module_imports()
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for dep in graph.get(node, ()):
            if dep.startswith(node + "."):  # a package importing its own submodule is fine
                continue
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack, node, dep]))
            if dep not in state:
                visit(dep, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_package_inits_import_nothing():
    """Importing a module runs its packages' __init__: they stay empty, so code inputs are exact
    (lnm.methods is the registry, lnm.models the backbone factory: both are real modules)."""
    for pkg in ("", "data", "noise", "report", "train"):
        init = LNM / pkg / "__init__.py"
        tree = ast.parse(init.read_text())
        assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], init


def test_parsing_the_workflow_imports_no_torch():
    code = (
        "import sys, lnm.grid, lnm.config, lnm.codedeps, lnm.train.spec\n"
        "lnm.config.load_config('config.yaml')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_path_templates_agree_with_run_dirs():
    cfg = {
        "datasets": ["breastmnist"],
        "noise": {"patterns": {"symmetric": [0.4]}, "clean": True, "noise_seeds": [0]},
        "methods": ["ce"],
        "backbones": ["resnet8"],
        "seeds": [1],
    }
    assert grid.run_dirs(cfg) == [
        "runs/breastmnist/none-0.0-n0/ce/resnet8/s1",
        "runs/breastmnist/symmetric-0.4-n0/ce/resnet8/s1",
    ]
    assert Path(
        grid.NOISE_FILE.format(dataset="d", noise="symmetric", rate="0.4", noise_seed=0)
    ) == (Path("noise/d/symmetric-0.4-n0.npz"))


def test_headline_names_follow_last_k():
    assert grid.HEADLINE == "test_acc_last_k" and grid.last_k_text(3) == "mean of the last 3 epochs"
    assert grid.single_last_k([5, 5]) == 5
    with pytest.raises(ValueError, match=r"different last_k \[3, 5\]"):
        grid.single_last_k([3, 5, 5])


def test_a_dry_run_imports_no_torch(tmp_path):
    """Parsing the workflow and planning every job never imports torch (a stand-in torch that
    refuses to import sits first on the path; the smoke grid keeps it quick, the paper grid
    plans the same rules)."""
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch imported while planning')\n")
    env = {**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{REPO}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--dry-run",
            "--quiet",
            "all",
            "--config",
            f"results={tmp_path / 'results'}",
        ],  # fmt: skip
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
