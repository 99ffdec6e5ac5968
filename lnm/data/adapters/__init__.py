"""Real-world dataset adapters: one module per adapter (:mod:`lnm.data.adapters.base`).

Which adapters exist, and their options, is read statically from these files by
:func:`lnm.grid.adapter_catalog`; :func:`lnm.data.realworld.get_adapter` imports the one a
dataset names.
"""
