"""Datasets: MedMNIST download/verification and the HDF5 store used for training."""

from .hdf5 import SPLITS, load_h5, preprocess
from .medmnist_io import DATASETS, SIZES, DataError, dataset_info, expected_md5, raw_filename

__all__ = [
    "DATASETS",
    "SIZES",
    "SPLITS",
    "DataError",
    "dataset_info",
    "expected_md5",
    "raw_filename",
    "load_h5",
    "preprocess",
]
