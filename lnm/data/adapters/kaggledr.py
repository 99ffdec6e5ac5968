"""KaggleDR+ (Ju et al. 2021): the Kaggle DR grades (noisy) with a re-annotation (clean).

``root/kaggle_{train,val}.csv`` (``image``, ``level`` noisy, ``vote`` re-annotated),
``root/golden.csv`` (the golden-standard test set) and
``root/diabetic-retinopathy-detection/image/<image>.jpeg``."""

from ._fundus import FundusAdapter


class KaggleDR(FundusAdapter):
    name = "kaggledr"
    order = 1
    files = {"train": "kaggle_train.csv", "val": "kaggle_val.csv", "test": "golden.csv"}
    image_column = "image"
    image_dir = "diabetic-retinopathy-detection/image"
    ext = ".jpeg"
    noisy = "level"
    clean = "vote"
