from lnm.noise import generate_noise_file
from lnm.workflow import logged

w = snakemake.wildcards
with logged(snakemake):
    generate_noise_file(
        snakemake.input[0],
        snakemake.output[0],
        w.noise,
        float(w.rate),
        int(w.noise_seed),
        noisy_val=snakemake.params.noisy_val,
        std=snakemake.params.instance_std,
    )
