# LNMBench-Snakemake: MedMNIST -> HDF5 -> noisy labels -> training -> tables, figures, manifest.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/noise.smk"
include: "rules/train.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(),


onstart:
    # Before any job runs (and before Snakemake deletes the outputs of the jobs it reruns): an
    # artifact whose SHA-256 sidecar is missing is an error naming it, not a cue to rerun its
    # producer. Jobs Snakemake reruns because they were interrupted (--rerun-incomplete) are
    # exempt: their outputs are rebuilt from scratch anyway.
    from lnm.verify import missing_sidecars_message

    _dag = workflow.dag
    _missing = missing_sidecars_message(
        f
        for job in _dag.needrun_jobs()
        if not _dag.reason(job).incomplete_output
        for f in job.output
    )
    if _missing:
        raise WorkflowError(_missing)
    # the console's progress line: the runs to train (it counts the finished ones itself)
    from lnm.workflow import announce_plan
    from snakemake.logging import logger as _logger

    announce_plan(_dag, config, _logger)
