from lnm.data.hdf5 import preprocess
from lnm.workflow import logged

with logged(snakemake):
    preprocess(snakemake.input[0], snakemake.output[0])
