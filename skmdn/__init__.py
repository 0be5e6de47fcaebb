"""skmdn: Mixture Density Networks as a scikit-learn regressor, on PyTorch.

The estimator :class:`MDNRegressor` fits an MLP whose outputs parameterise a
Gaussian mixture ``p(y | x)``; :meth:`MDNRegressor.predict_dist` returns that
mixture as a :class:`GaussianMixture`, or, for a model fitted with
``target_transform``, the mixture of log-normals of ``y`` as a
:class:`TransformedMixture`.
"""

from ._mixture import GaussianMixture
from ._regressor import MDNRegressor
from ._transformed import TransformedMixture
from ._univariate import HighestDensityRegion

__all__ = [
    "GaussianMixture",
    "HighestDensityRegion",
    "MDNRegressor",
    "TransformedMixture",
    "__version__",
]

__version__ = "0.1.0"
