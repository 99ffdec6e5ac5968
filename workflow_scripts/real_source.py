import sys
from pathlib import Path

from lnm.data.hdf5 import write_source_record
from lnm.workflow import logged

# the root folder comes from the config, not params: where a dataset is kept is not part of
# any result (the record holds each CSV's SHA-256, no path)
with logged(snakemake):
    entry = snakemake.config["real_world"][snakemake.wildcards.dataset]
    write_source_record(
        snakemake.params.adapter,
        Path(entry["root"]).expanduser(),
        snakemake.params.options,
        snakemake.output[0],
    )
    print(f"recorded {entry['root']} ({snakemake.params.adapter})", file=sys.stderr)
