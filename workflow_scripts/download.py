from lnm.data.medmnist_io import fetch
from lnm.workflow import logged

with logged(snakemake):
    rec = fetch(
        snakemake.wildcards.dataset,
        int(snakemake.wildcards.size),
        snakemake.params.raw_dir,
        snakemake.output[0],
        allow_download=snakemake.params.allow_download,
    )
    print(f"verified {rec['path']} (MD5 {rec['md5']})", file=__import__("sys").stderr)
