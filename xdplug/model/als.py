"""iALS (Hu, Koren and Volinsky 2008) through the ``implicit`` package's CPU solver.

One fit for every user of it: the ``iALS`` baseline and the closed-form family's iALS term
(``factor_rank``, ``model/linear.py``).
"""

from __future__ import annotations

import numpy as np


def fit_als(matrix, factors: int, regularization: float, alpha: float, iterations: int, seed: int,
            use_cg: bool = True):
    """An ``implicit`` ALS model fitted on the users x items ``matrix`` (one BLAS thread, as implicit asks:
    it parallelises over users itself)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                        iterations=iterations, use_cg=use_cg, random_state=seed,
                                        calculate_training_loss=False)
        model.fit(matrix.astype(np.float32).tocsr(), show_progress=False)
    return model
