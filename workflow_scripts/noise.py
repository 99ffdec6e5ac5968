from lnm.noise.generate import generate_noise_file
from lnm.workflow import logged

w, params = snakemake.wildcards, snakemake.params[0]
with logged(snakemake):
    generate_noise_file(
        snakemake.input[0],
        snakemake.output[0],
        w.noise,
        float(w.rate),
        int(w.noise_seed),
        noisy_val=params["noisy_val"],
        # recorded in every noise file, used by instance noise only (a param of those alone)
        std=params.get("instance_std", snakemake.config["noise"]["instance_std"]),
        # nested draws across rates (default); false: the rate enters the seed (key "draws")
        nested=params.get("nested", True),
        # instance_classifier: the flip-target classifier's logits (verified, recorded)
        generator_logits=snakemake.input.generator[0] if snakemake.input.generator else None,
    )
