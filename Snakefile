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
    # Only when jobs will run (not in dry runs, --report or "Nothing to be done"), before any
    # job runs (and before Snakemake deletes the outputs of the jobs it reruns):
    # 1. the results folder's lock, held until this process ends: a second run on the same
    # results folder (another clone, another working directory) is refused, naming the holder;
    from lnm.results_lock import ResultsInUse, acquire
    from lnm.verify import missing_sidecars_message

    try:
        acquire(RES)
    except ResultsInUse as err:
        raise WorkflowError(str(err)) from None
    # 2. an artifact whose SHA-256 sidecar is missing is an error naming it, not a cue to rerun
    # its producer. Jobs Snakemake reruns because they were interrupted (--rerun-incomplete)
    # are exempt: their outputs are rebuilt from scratch anyway.
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
