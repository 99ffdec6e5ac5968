from lnm.report.manifest import write_manifest
from lnm.workflow import logged

with logged(snakemake):
    write_manifest(
        [f for f in snakemake.input.artifacts if not f.endswith(".sha256")],
        snakemake.params.root,
        snakemake.output[0],
    )
