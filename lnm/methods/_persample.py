"""Per-sample state of a method: tensors with one row per training sample, kept on the method's
device and saved in its checkpoint (ELR's target EMA, SOP's u and v, GCE's pruning weights,
Co-Correcting's label distributions and curriculum subsets, ...).

A method registers each tensor once (:meth:`PerSample.add`), reads and writes rows by index
(``store["target"][idx] = ...``) and returns :meth:`PerSample.state_dict` from its
``extra_state``; :meth:`PerSample.load_state_dict` copies a checkpoint's values into the
registered tensors in place (an optimiser over them keeps working) and refuses a state whose names, shapes or dtypes
differ (a checkpoint of another method or data set), naming what differs.
"""

from __future__ import annotations

import torch


class PerSample:
    """Named tensors of ``num_train`` rows each."""

    def __init__(self, num_train: int, device: torch.device | str):
        self.n, self.device = int(num_train), torch.device(device)
        self._tensors: dict[str, torch.Tensor] = {}

    def add(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """Register ``tensor`` (first dimension = the number of training samples) as ``name``."""
        if name in self._tensors:
            raise ValueError(f"per-sample state {name!r} is already registered")
        if tensor.dim() == 0 or len(tensor) != self.n:
            raise ValueError(
                f"per-sample state {name!r} must have {self.n} rows (one per training sample), "
                f"got shape {tuple(tensor.shape)}"
            )
        self._tensors[name] = tensor.to(self.device)
        return self._tensors[name]

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def __setitem__(self, name: str, tensor: torch.Tensor) -> None:
        """Replace ``name`` by a tensor of the same shape and dtype."""
        old = self._tensors[name]
        if tensor.shape != old.shape or tensor.dtype != old.dtype:
            raise ValueError(
                f"per-sample state {name!r}: shape/dtype {tuple(tensor.shape)}/{tensor.dtype} "
                f"instead of {tuple(old.shape)}/{old.dtype}"
            )
        self._tensors[name] = tensor.to(self.device)

    def __contains__(self, name: str) -> bool:
        return name in self._tensors

    def names(self) -> list[str]:
        return list(self._tensors)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self._tensors.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self._tensors):
            raise ValueError(
                f"per-sample state holds {sorted(state)}, this method keeps {sorted(self._tensors)}"
            )
        for name, value in state.items():
            old = self._tensors[name]
            if value.shape != old.shape or value.dtype != old.dtype:
                raise ValueError(
                    f"per-sample state {name!r} in the checkpoint has shape/dtype "
                    f"{tuple(value.shape)}/{value.dtype}, expected {tuple(old.shape)}/{old.dtype}"
                )
        with torch.no_grad():  # in place: optimisers holding a tensor (SOP's u, v) keep it
            for name, value in state.items():
                self._tensors[name].copy_(value)
