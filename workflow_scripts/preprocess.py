from lnm.data.hdf5 import preprocess
from lnm.workflow import logged

with logged(snakemake):  # raw_dir from the config: the raw file's MD5 is checked on reading
    preprocess(snakemake.input[0], snakemake.config["raw_dir"], snakemake.output[0])
