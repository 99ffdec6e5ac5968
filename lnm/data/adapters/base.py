"""The base class of the real-world dataset adapters.

An adapter is one file in this folder (``lnm/data/adapters/<name>.py``) with one subclass of
:class:`Adapter` that declares what it is and reads its folder's CSVs into
:class:`~lnm.data.adapters._tables.SplitTables`:

- literals, read statically by :func:`lnm.grid.adapter_catalog` (no import, so the workflow
  lists the adapters, fills the config schema and plans its jobs cheaply): ``name`` (the
  ``adapter`` of a ``real_world`` entry), ``order`` (its place in listings), ``options``
  (option -> JSON-schema fragment with its ``default``; ``{**Parent.options, ...}`` changes a
  parent's) and ``clean_train`` (whether the training labels have clean counterparts; whether
  the val labels have is read from the data: :attr:`SplitTables.val_has_clean`);
- what it does: :meth:`Adapter.layout` (the folder it expects, for errors),
  :meth:`Adapter.split_files` (the CSV of each split), :meth:`Adapter.read` (the tables) and,
  for checks the schema cannot state, :meth:`Adapter.check_options`.

Shared building blocks live in modules whose names start with ``_`` (and here); the CSV cells,
labels and image paths are read with :mod:`lnm.data.adapters._tables`. docs/datasets.md shows an
adapter written as one file.
"""

from __future__ import annotations

import copy
from pathlib import Path

from ... import grid
from ._tables import RealWorldError, SplitTables


class Adapter:
    """A real-world dataset layout (module docstring). Subclasses set the literals below."""

    #: the adapter's name (``real_world.<dataset>.adapter`` in the config)
    name = ""
    #: position in listings (the schema's enum, errors); unset: after the others, by name
    order = 10**6
    #: option -> JSON-schema fragment with its ``default`` and a ``description``
    options = {}
    #: the options every adapter takes, after its own
    common_options = {
        "duplicates": {
            "enum": ["refuse", "keep_first"],
            "default": "refuse",
            "description": (
                "rows naming the same image (same file, or same decoded pixels): refuse "
                "(default) any; keep_first drops a later row of the same split whose labels "
                "equal the first row's. An image in two splits, or twice with different labels, "
                "is always refused"
            ),
        }
    }
    #: whether the training labels have clean counterparts: true, false, or the names of the
    #: options any of which, when set, gives them (:func:`lnm.grid.adapter_has_clean_train`)
    clean_train = True
    #: the HDF5 ``task`` attribute; None: binary-class or multi-class by the number of classes
    task = None
    #: LNMBench's image size for this set (config.yaml's entry uses it); None: not in LNMBench
    lnmbench_size = None

    # ------------------------------------------------------------------------------- options

    def all_options(self) -> dict:
        """Option -> JSON-schema fragment with its default: the adapter's, then the common."""
        return {**self.options, **self.common_options}

    def normalize(self, options: dict | None) -> dict:
        """``options`` validated and completed with the defaults (what the source record
        stores). Raises :class:`RealWorldError` naming the key, the value and what is allowed."""
        options = dict(options or {})
        declared = self.all_options()
        unknown = sorted(set(options) - set(declared))
        if unknown:
            raise RealWorldError(
                f"{self.name}: unknown option(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(declared)}"
            )
        out = {**{k: copy.deepcopy(s["default"]) for k, s in declared.items()}, **options}
        if out["duplicates"] not in DUPLICATE_POLICIES:
            raise RealWorldError(
                f"{self.name} option 'duplicates' = {out['duplicates']!r}: allowed: refuse (any "
                "image named by two rows stops the dataset, naming both rows; default), "
                "keep_first (a later row of the same split with the same labels as the first is "
                "dropped; duplicates across splits or with different labels are still refused)"
            )
        return self.check_options(out)

    def check_options(self, opts: dict) -> dict:
        """What the options' schema fragments cannot check, with errors that say what the
        option means; returns the options, values canonicalised. Nothing here."""
        return opts

    def has_clean_train(self, options: dict | None) -> bool:
        """Whether the training labels have clean counterparts (from the options alone)."""
        return grid.adapter_has_clean_train(self.name, self.normalize(options))

    # -------------------------------------------------------------------------------- layout

    def layout(self, options: dict | None) -> list[str]:
        """What the dataset folder must hold, one line per file (for errors and docs)."""
        raise NotImplementedError

    def layout_text(self, options: dict | None) -> str:
        """:meth:`layout` indented below an error message ("" when the options are invalid)."""
        try:
            lines = self.layout(options)
        except RealWorldError:
            return ""
        return "\n  " + "\n  ".join(lines)

    def locate(self, root, opts: dict) -> Path:
        """``root`` made absolute; refused when it is not a folder, naming what it must hold."""
        root = Path(root).expanduser().absolute()
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise RealWorldError(
                f"{self.name} dataset folder {root} {what}. Point the dataset's `root` in the "
                f"config at the folder that holds:{self.layout_text(opts)}"
            )
        return root

    def split_files(self, root: Path, opts: dict) -> tuple[dict, str | None]:
        """split -> CSV path, and the layout's name where the adapter knows several."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------- reading

    def read(self, root: Path, opts: dict) -> SplitTables:
        """The tables of the folder ``root`` (checked by :meth:`split_files`): every row's
        labels parsed; images named, not opened (the caller checks and deduplicates them)."""
        raise NotImplementedError


#: The ``duplicates`` policies (see :class:`lnm.data.realworld.Duplicates`).
DUPLICATE_POLICIES = tuple(Adapter.common_options["duplicates"]["enum"])
