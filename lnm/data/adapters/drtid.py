"""DRTiD (Hou et al., BIBM 2022): fundus photographs with noisy and expert DR grades.

``root/final_{train,val,test}.csv`` (``image_name``, ``Grade`` noisy, ``Grade_gt`` expert; test:
``Grade`` is the reference) and ``root/image/newall_/<image_name>.jpg``."""

from ._fundus import FundusAdapter


class Drtid(FundusAdapter):
    name = "drtid"
    order = 0
    files = {"train": "final_train.csv", "val": "final_val.csv", "test": "final_test.csv"}
    image_column = "image_name"
    image_dir = "image/newall_"
    ext = ".jpg"
    noisy = "Grade"
    clean = "Grade_gt"
