from lnm.report.manifest import write_manifest
from lnm.verify import require_verified
from lnm.workflow import logged

with logged(snakemake):
    artifacts = [f for f in snakemake.input.artifacts if not f.endswith(".sha256")]
    # `lnm verify` over every input first: all problems at once (missing sidecars, files changed
    # after they were written even with their old modification time), not just the first one
    digests = require_verified(artifacts)  # each file is hashed once
    write_manifest(artifacts, snakemake.params.root, snakemake.output[0], digests)
