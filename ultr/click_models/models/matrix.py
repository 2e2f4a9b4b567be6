"""Click probability looked up by (grade, rank): matrix[y][k-1] (ranks past the matrix reuse its
last column), clicks independent. It is written as examination times a rank-dependent attraction:
examination_k = matrix[y_max][k-1] / matrix[y_max][0], the column's ratio to rank 1 at the top
grade (exact when the matrix factorises, as a PBM's does), and attraction = matrix[y][k-1] /
examination_k, so that their product is the matrix entry."""

from __future__ import annotations

import numpy as np

from ultr.click_models.models.pbm import PBM
from ultr.errors import DataError


class Matrix(PBM):
    """PBM's probabilities (examination x a per-item table), with the table per (grade, rank)."""

    key = "matrix"
    paper = "a click-probability table per (grade, rank)"
    fittable = False
    settings = {"matrix": ()}

    @classmethod
    def simulation_params(cls, s, labels, K):
        m, y_max = np.asarray(s["matrix"], np.float64), s["y_max"]
        if m.ndim != 2 or m.shape[0] < y_max + 1:
            raise DataError(f"click_model.matrix needs {y_max + 1} rows (labels 0..{y_max}) of per-position click probabilities")
        col = np.minimum(np.arange(K), m.shape[1] - 1)
        exam = m[-1, col] / m[-1, 0]
        return {"attraction": m[np.clip(labels, 0, y_max), col] / np.where(exam > 0, exam, 1.0), "examination": exam}
