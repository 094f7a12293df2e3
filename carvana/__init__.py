"""carvana: an experiment-tracked U-Net pipeline for the Kaggle Carvana Image Masking Challenge."""

import os

# albumentations checks PyPI for a newer release at every import; stages must run offline and quietly.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
