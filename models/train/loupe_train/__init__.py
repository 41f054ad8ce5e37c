"""Training, export and evaluation of Loupe's models (see models/train/README.md)."""

import os

# numpy's BLAS would start one thread per core for every small resize matmul; under load that
# is ~10x slower than one thread. Set before numpy is imported (train_all.sh exports it too).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
