import sys

from lnm.data.medmnist_io import fetch
from lnm.workflow import logged

# raw_dir and allow_download come from the config, not params: where the raw file lives is not
# part of any result (its MD5, in the record, is)
with logged(snakemake):
    w, cfg = snakemake.wildcards, snakemake.config
    path, rec = fetch(
        w.dataset,
        int(w.size),
        cfg["raw_dir"],
        snakemake.output[0],
        allow_download=cfg["allow_download"],
    )
    print(f"verified {path} (MD5 {rec['md5']})", file=sys.stderr)
