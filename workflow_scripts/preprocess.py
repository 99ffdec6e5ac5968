import sys
from pathlib import Path

from lnm import grid
from lnm.data.hdf5 import preprocess, preprocess_real
from lnm.workflow import logged

w, cfg = snakemake.wildcards, snakemake.config
with logged(snakemake):  # raw files are verified against the record when they are read
    if grid.is_real_world(cfg, w.dataset):
        entry = cfg["real_world"][w.dataset]
        preprocess_real(
            snakemake.input[0],
            Path(entry["root"]).expanduser(),
            entry.get("options", {}),
            snakemake.output[0],
            int(w.size),
            workers=snakemake.threads,
            log=lambda line: print(line, file=sys.stderr, flush=True),
            dataset=w.dataset,
        )
    else:
        preprocess(snakemake.input[0], cfg["raw_dir"], snakemake.output[0])
