"""Where the data lives by default: the one place that names the data set folders and split files.

Paths are relative to the project root (the commands are run from a checkout, beside ``../shared``);
every command takes ``--data`` / ``--split`` to point elsewhere.

>>> UTKFACE_DIR.name, UTKFACE_SPLIT.name
('UTKFace', 'utkface_v1.csv')
"""

from __future__ import annotations

from pathlib import Path

#: UTKFace's aligned & cropped faces (the training share the project owners provide)
UTKFACE_DIR = Path("../shared/datasets/utkface/UTKFace")
#: FairFace's 20,000 training images and ``labels.csv``
FAIRFACE_DIR = Path("../shared/datasets/fairface")
#: the committed UTKFace split (train / val / test by file, duplicates kept on one side)
UTKFACE_SPLIT = Path("splits/utkface_v1.csv")
#: the committed FairFace split (80/10/10, stratified by race x age group x gender)
FAIRFACE_SPLIT = Path("splits/fairface_v1.csv")
