"""Datasets: MedMNIST download/verification and the HDF5 store used for training."""
