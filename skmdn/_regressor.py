"""The scikit-learn shell: :class:`MDNRegressor`."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from sklearn import get_config
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from ._data import (
    dense_rows,
    dominated_columns,
    pack_rows,
    weighted_mean_scale,
    weighted_quantiles,
)
from ._kernels import tanh_forms
from ._mixture import (
    SAMPLE_ROWS,
    GaussianMixture,
    check_n_samples,
    mixture_approx_mode,
    mixture_mean,
    sample_seeds,
)
from ._network import NOISE_TYPES, MDNNetwork
from ._training import (
    FlatAdam,
    TrainData,
    TrainHistory,
    _randn_like,
    distinct_rows,
    mean_log_likelihood,
    train,
    training_torch_threads,
)
from ._transformed import (
    TARGET_TRANSFORMS,
    TransformedMixture,
    support_low,
    to_transformed,
)
from ._univariate import HighestDensityRegion
from ._utils import (
    ThreadChooser,
    check_finite_targets,
    check_input_kind,
    check_sample_weight,
    cpu_fast_path,
    non_finite_advice,
    overflow_safe_weights,
    resolve_device,
    resolve_dtype,
    run_blocks,
    seed_from_random_state,
    target_shape,
    tensor_view,
    thread_count,
    to_numpy,
    torch_threads,
    warn_user,
)

__all__ = ["MDNRegressor"]

# Rows per forward pass at inference. Chunks run on worker threads, one torch
# thread each (see MDNRegressor._map_dists); on 1e6 rows 16384-row chunks beat
# 8192 (synth10 predict 0.25 against 0.28 s, sine 0.19 against 0.21 s) and
# 24576 or more (0.27-0.40 s), measured in one run. All inference streams over
# chunks, so memory is bounded by the outputs. Each chunk samples from its own
# random stream (SAMPLE_ROWS rows each).
_PREDICT_CHUNK = SAMPLE_ROWS
# Parameters whose constraints accept an Integral, which a bool also is.
_INTEGER_PARAMS = (
    "n_components",
    "batch_size",
    "max_iter",
    "n_iter_no_change",
    "n_threads",
)

# The parameters that inference reads, which set_params may change after fit.
_INFERENCE_PARAMS = ("point_estimate", "n_threads")

# Point estimates that need only the mixture's weights and means: predict
# computes them without the scales (MDNRegressor._chunk_locations).
_LOCATION_ESTIMATES = {"mean": mixture_mean, "approx_mode": mixture_approx_mode}

# The parameters that shape a fitted model: warm_start and partial_fit
# continue a model only under the values it was built with.
_STRUCTURAL_PARAMS = (
    "n_components",
    "noise_type",
    "fixed_noise_level",
    "hidden_layer_sizes",
    "activation",
    "min_scale",
    "standardize",
    "target_transform",
    "precision",
)
# Rows of the training data on which the loss at initialisation is estimated.
_INITIAL_LOSS_ROWS = 4096
# At most this many rows (evenly spaced) set the initial component means.
_QUANTILE_ROWS = 100_000

# 'auto' training levers (early stopping, mini-batches) switch on from this
# effective sample size (Kish: sum(w)^2 / sum(w^2), the number of rows for
# equal weights; invariant to rescaling the weights). Below it a 10 %
# validation split holds too few points to stop on, and deterministic
# full-batch training keeps integer weights exactly equivalent to repeated
# rows. (noise_regularization='auto' applies only below this: there it is
# the guard against overfitting that the split cannot be.)
_AUTO_MIN_SAMPLES = 100
# Noise regularisation 'auto': bandwidth c * n ** (-1 / (4 + d)) in
# standardised units (Rothfuss et al. 2019), n = effective sample size,
# d = n_features + n_outputs.
_NOISE_C = 0.2
_AUTO_BATCH_MIN = 32
# Patience is counted in epochs of at most this many optimiser steps (see
# _patience); learning_rate='plateau' halves the rate after half of it.
_PATIENCE_EPOCH_STEPS = 150
_LR_DECAY_DIVISOR = 2


def _patience(epochs: int, steps_per_epoch: int) -> int:
    """``epochs`` of at most :data:`_PATIENCE_EPOCH_STEPS` optimiser steps
    each, as a number of actual epochs (at least one).

    On large data an epoch is hundreds of steps, and a patience fixed in
    epochs kept training (and a high learning rate) going far longer than the
    fit needed: on a synthetic 10-feature problem with 1e5 rows (352 steps an
    epoch) a default fit ran 143 epochs (31 s) for a best validation NLL of
    -0.2493; counting its epochs this way, 90 epochs (22 s) for -0.2490, and
    within 30 epochs the plateau schedule alone improved the best from
    -0.2275 to -0.2340 (``benchmarks/README.md``). Every UCI benchmark fit, at
    most 145 steps an epoch, keeps its patience in epochs.

    >>> _patience(50, 10), _patience(50, 352), _patience(25, 352)
    (50, 21, 11)
    >>> _patience(50, 10**5)
    1
    """
    epochs = int(epochs)  # a numpy uint8 would overflow in the product
    if steps_per_epoch <= _PATIENCE_EPOCH_STEPS:
        return epochs
    return max(1, round(epochs * _PATIENCE_EPOCH_STEPS / steps_per_epoch))


def _continued_seed(seed: int, n_iter: int) -> int:
    """Seed of the shuffling and noise stream of a call that continues a
    model after ``n_iter`` epochs (a warm-started :meth:`MDNRegressor.fit`,
    :meth:`MDNRegressor.partial_fit`): each continuation draws its own
    stream, and a call that left the model as it was is replayed exactly.

    >>> _continued_seed(0, 0), _continued_seed(0, 1), _continued_seed(2**63 - 1, 0)
    (1000003, 2000006, 1000002)
    """
    return (seed + 1_000_003 * (n_iter + 1)) % (2**63)


def _effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``sum(w)**2 / sum(w**2)``, scale-free.

    Equal weights (no ``sample_weight``) give the number of rows, without
    the formula's two temporaries of the weights' size (1.5-8 ms of a fit on
    1e6 rows); below 9e7 rows the formula gives that value exactly too.

    >>> ess = _effective_sample_size
    >>> ess(np.ones(3)), ess(np.array([1.0, 1.0, 2.0, 2.0]))
    (3.0, 3.6)
    """
    if w.min() == w.max():
        return float(len(w))
    w = w / w.max()
    return float(w.sum() ** 2 / np.sum(w**2))


class MDNRegressor(RegressorMixin, BaseEstimator):
    """Mixture Density Network regressor (Bishop, 1994).

    An MLP maps each input ``x`` to the weights, means and scales of a
    Gaussian mixture over the target, and is trained by maximising the
    log-likelihood. The fitted model gives the whole conditional density
    ``p(y | x)`` through :meth:`predict_dist`; :meth:`predict`,
    :meth:`sample` and :meth:`score` derive from it.

    Parameters
    ----------
    n_components : int, default=5
        Number of mixture components ``K``. Over-parameterising (more
        components than modes) is harmless and avoids the classic local
        minimum of one diffuse Gaussian.
    noise_type : {'diagonal', 'isotropic', 'isotropic_across', 'fixed', \
'full'}, default='diagonal'
        Covariance of each component: ``'diagonal'`` a scale per component and
        output; ``'isotropic'`` one scale per component shared by the outputs;
        ``'isotropic_across'`` one scale ``sigma(x)`` shared by all components
        and outputs; ``'fixed'`` the constant ``fixed_noise_level`` (not
        learned); ``'full'`` a full covariance per component through a
        Cholesky factor with a positive diagonal, the choice for correlated
        outputs (``'diagonal'`` captures correlation only through several
        components: 0.24 against 0.03 nats per row from the true density of
        a 2-D target with correlation up to 0.9, in ``benchmarks/synthetic.py``,
        at 1.2x the fit time). Scales are shared in
        standardised units: in target units each output's is proportional
        to its standard deviation (``standardize=False`` to share one scale
        in target units).
    fixed_noise_level : float, default=None
        Standard deviation for ``noise_type='fixed'``, in target units (of
        ``log y`` or ``log(1 + y)`` with ``target_transform``). Required with
        that noise type, ignored otherwise.
    point_estimate : {'mean', 'mode', 'approx_mode'}, default='mean'
        What :meth:`predict` returns: the conditional mean
        ``sum_k pi_k mu_k``; the mode (global maximum of ``p(y | x)``,
        :meth:`GaussianMixture.mode`), the most probable value and the right
        choice for multimodal targets; or the mean of the most probable
        component (Bishop's cheap approximation of the mode). The exact
        mode climbs the density from every component mean (and, with
        several outputs, from the peak of every pair of components), so it
        costs far more than the mean: with K = 5 about 10 us per row for
        one output and 0.1-0.2 ms for two to five, where the mixture's mean
        takes under 1 us (random mixtures, one thread of a loaded 2-vCPU
        machine; the network's forward pass comes on top of either).
    hidden_layer_sizes : int or array-like of shape (n_layers,), default=(64, 64)
        Widths of the hidden layers (an int: one hidden layer).
    activation : {'tanh', 'relu', 'logistic', 'gelu', 'silu', 'identity'}, \
default='tanh'
        Hidden-layer activation. Away from the training inputs a bounded
        activation holds its edge values, while ``'relu'`` (and ``'gelu'``,
        ``'silu'``, ``'identity'``) extrapolates linearly, scales included:
        fitted on x in [0, 1] with noise 0.1, ``'relu'`` predicted at x = 10
        a mean of 45 with a standard deviation of 0.0007, ``'tanh'`` 0.62
        and 0.11. No network knows ``p(y | x)`` there; the bounded form
        fails less confidently.
    alpha : float, default=1e-4
        Strength of the L2 penalty on the weight matrices:
        ``alpha / (2 n) * ||W||^2`` added to the mean NLL, where ``n`` is
        the sum of the sample weights (the number of rows without weights),
        whatever ``batch_size``, so that an integer weight stays equivalent
        to repeating the row. That is the scaling of
        :class:`~sklearn.neural_network.MLPRegressor` with
        ``solver='lbfgs'``; its mini-batch solvers (``'adam'``, ``'sgd'``)
        divide by the batch's sum instead, a penalty ``n / batch_size``
        times stronger (multiply their ``alpha`` by that to carry it over).
        Weights normalised to sum to one make the penalty ``n``
        times stronger: pass counts, or scale ``alpha`` with them. In
        :meth:`partial_fit`, ``n`` is the chunk's: streaming chunks of ``m``
        rows penalises ``n / m`` times more than one ``fit`` on all ``n``
        rows (divide ``alpha`` by that to match).
    batch_size : int or 'auto', default='auto'
        Mini-batch size. ``'auto'`` gives about ten steps per epoch on small
        data and at most 256 rows: ``min(n, max(32, min(256, n // 10)))``
        for ``n`` training rows, and the full batch when the effective sample
        size (see ``early_stopping``) is below 100.
    learning_rate_init : float, default=3e-3
        Adam's initial learning rate.
    learning_rate : {'plateau', 'constant'}, default='plateau'
        Schedule of the learning rate in :meth:`fit`. ``'plateau'`` halves it
        after every ``max(1, n_iter_no_change // 2)`` epochs without an
        improvement of the monitored loss (training loss, or validation
        log-likelihood with early stopping), so training ends with small,
        precise steps (long epochs count as several, as for
        ``n_iter_no_change``). ``'constant'`` keeps ``learning_rate_init``.
    max_iter : int, default=300
        Maximum number of epochs.
    tol : float, default=1e-4
        Minimum improvement (in nats) of the training loss, or of the
        validation log-likelihood with ``early_stopping``, that resets the
        patience counter.
    n_iter_no_change : int, default=50
        Patience: :meth:`fit` stops once more than ``n_iter_no_change``
        epochs in a row pass without an improvement of at least ``tol`` (as
        in :class:`~sklearn.neural_network.MLPRegressor`). An epoch of more
        than 150 optimiser steps counts as several (one of 600 steps as
        about four), so that on large data training stops after a similar amount of
        work without progress as on small data, instead of running hundreds
        of thousands of steps past its best (the patience is then
        ``max(1, round(n_iter_no_change * 150 / steps))`` epochs).
    early_stopping : bool or 'auto', default='auto'
        Hold out ``validation_fraction`` of the training data, stop when its
        log-likelihood stops improving, and restore the best weights.
        ``'auto'`` does so when the effective sample size
        ``sum(w) ** 2 / sum(w ** 2)`` of the sample weights ``w`` (the number
        of rows without weights) is at least 100, and otherwise trains on all
        rows, stopping on the training loss.
    validation_fraction : float, default=0.1
        Share of the training data held out with ``early_stopping``.
    noise_regularization : {'auto', 'always'}, float or None, default='auto'
        Standard deviation (in standardised units; with
        ``standardize=False``, in the units of ``X`` and ``y``) of fresh
        Gaussian noise added to the inputs and targets of every mini-batch
        (Rothfuss et al., 2019): a smoothness prior that shrinks as data
        grow. ``'always'`` uses the rule ``0.2 * n ** (-1 / (4 + d))`` with
        ``n`` the effective sample size (see ``early_stopping``) and
        ``d = n_features + n_outputs``. ``'auto'`` uses the rule below 100
        effective samples, where ``early_stopping='auto'`` holds nothing out
        and the network would overfit unguarded, and no noise from 100 up
        (on 30 rows of ``y = x + N(0, 0.3**2)`` a fit without noise scores
        -2.8 held out, with it -0.6, the truth -0.2; on the UCI benchmark's
        larger data the rule improves noisy data sets such as boston but
        costs up to 2 nats on nearly noise-free ones such as yacht; README.md
        and ``benchmarks/README.md`` have the measurements). A float is used
        as it is; ``None`` or ``0`` disables noise. In full-batch training
        without a validation split (the default below 100 effective samples)
        the noise is drawn once per distinct row of ``X`` and ``y`` and the
        rule's ``n`` counts distinct rows with their weights summed, so that
        an integer sample weight stays equivalent to repeating the row; with
        mini-batches or ``early_stopping=True`` it is drawn per row and ``n``
        is the effective sample size of all rows. Used by :meth:`fit` (not
        :meth:`partial_fit`); the reported ``loss_curve_`` is then the loss on
        noisy data.
    min_scale : float, default=1e-3
        Floor on every component standard deviation (and Cholesky diagonal),
        in standardised target units (target units if ``standardize=False``).
        Keeps the density bounded on duplicated points. Not applied with
        ``noise_type='fixed'``, whose scale is ``fixed_noise_level`` as given.
    standardize : bool, default=True
        Standardise ``X`` and ``y`` internally (weighted by
        ``sample_weight``). Every output is in the original units. With
        ``False``, ``min_scale`` and the noise of ``noise_regularization``
        (on by default below 100 samples) are in the units of ``X`` and
        ``y``, which should then have a spread near one: on 30 rows of data
        with a spread of 0.01, the default noise of 0.11 scores 1 nat worse
        than none.
    target_transform : {'log', 'log1p'} or None, default=None
        Model ``z = log(y)`` (targets ``y > 0``) or ``z = log(1 + y)``
        (``y > -1``: counts and amounts with zeros) with the Gaussian
        mixture, so that ``p(y | x)`` is a mixture of log-normals: no
        probability below the support, and the right skew of prices,
        demand or durations. Standardisation, ``min_scale`` and
        ``noise_regularization`` then act on ``z``. Everything the model
        returns is in the units of ``y``: :meth:`predict_dist` gives a
        :class:`~skmdn.TransformedMixture` (closed-form mean and covariance,
        exact quantiles, the mode of ``p(y | x)``, not of ``p(z | x)``);
        :meth:`score`, ``loss_curve_`` and the validation scores include the
        Jacobian, so they compare with models fitted on ``y`` itself.
        ``predict_interval(kind='hdr')`` is not available (the central
        interval is). A target outside the support raises a ``ValueError``
        in :meth:`fit` and :meth:`partial_fit`; in :meth:`score` it has
        log-likelihood ``-inf``.
    precision : {'auto', 'float32', 'float64'}, default='auto'
        Floating-point type of the network. ``'auto'`` follows the dtype of
        ``X`` at fit: float32 input trains in float32 (the fast path), any
        other input in float64 (pandas' nullable ``Float32`` and Arrow
        ``float32[pyarrow]`` columns too: scikit-learn converts them to
        float64). The call that builds the model decides: a warm-started fit
        or a later :meth:`partial_fit` keeps its type whatever the dtype of
        its ``X``. Outputs are always float64 numpy arrays. A float32 model
        is not bit-stable: BLAS picks its kernel by the number of rows, so a
        row's outputs can move by ~1e-7 relative with the rows predicted
        beside it, and integer ``sample_weight`` matches repeated rows only
        to that rounding, which training amplifies.
    device : str or torch.device, default='auto'
        Where :meth:`fit` and :meth:`partial_fit` train: ``'auto'`` (the
        current CUDA GPU, else MPS, else the CPU, chosen at each call),
        ``'cpu'``, ``'cuda'`` (the GPU current at the call), ``'cuda:N'`` or
        ``'mps'``, or a :class:`torch.device` of those. A device this machine
        does not have raises a ``ValueError`` (no silent fallback). MPS has
        no float64: a float64 request trains in float32 there, with a
        warning. Tensors are moved there internally; inputs and outputs are
        numpy arrays. Prediction runs where the model is (``device_``). A
        model continued (``warm_start``, :meth:`partial_fit`) after
        ``set_params(device=...)`` moves to the new device with Adam's
        state (a float64 model cannot move to MPS: an error says what to do).
    n_threads : int, default=None
        Number of CPU threads used by fit and prediction; the global torch
        setting is restored afterwards. ``None`` means the thread budget:
        torch's current setting, lowered to ``OMP_NUM_THREADS`` if that is
        smaller (joblib and dask workers set it). Training steps on fewer
        than 4096 rows use one thread (small steps are dominated by
        per-kernel overhead). Larger batches are cut into an even number of
        blocks of at most 4096 rows, fixed by the batch size, which run on
        worker threads with one torch thread each; ``None`` times one worker
        against the budget and keeps the faster, probing again from time to
        time, since on a machine busy with other processes a second thread
        can make every step many times slower. Prediction, scoring and
        sampling run their chunks on that many worker threads with one torch
        thread each. So results do not depend on the number of threads.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, the validation split and the
        noise-regularisation draws. The same integer gives an identical model
        on the same machine and software, whatever ``n_threads`` and the
        machine's load. Global numpy and torch random states are never used
        or changed.
    verbose : int, default=0
        Progress report: 0 silent; 1 a tqdm progress bar over the epochs with
        the training loss and, with ``early_stopping``, the validation NLL
        (a printed line per epoch when tqdm is not installed); 2 a printed
        line per epoch, for logs. Both print a last line when :meth:`fit`
        stops on ``n_iter_no_change``: why, and with early stopping which
        epoch's weights it kept (as ``MLPRegressor`` says why it stopped).
    warm_start : bool, default=False
        Continue training from the fitted weights (and standardisation) on
        the next call to :meth:`fit`, with Adam's moment estimates carried
        over; the learning rate restarts at ``learning_rate_init``. With
        early stopping, the weights kept are the best of this call's epochs
        (the call's starting weights are not a candidate, unlike in
        ``MLPRegressor``), so a short warm fit can end below where it
        started. The parameters that shape the network
        (``n_components``, ``noise_type``, ``hidden_layer_sizes``,
        ``activation``, ``min_scale``, ``fixed_noise_level`` with fixed
        noise, ``standardize``, ``target_transform``, ``precision``) must
        keep their values: a changed one raises a ``ValueError`` that names
        it (``warm_start=False`` builds a new model). A changed ``device`` is
        honoured: the model moves there (see ``device``).

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit (only when ``X`` has string column
        names).
    n_outputs_ : int
        Dimension of the target.
    network_ : torch.nn.Module
        The fitted network (on ``device_``), in standardised units.
    device_ : str
        Device the network lives on: where the last :meth:`fit` or
        :meth:`partial_fit` trained, or the CPU after loading on a machine
        without that device.
    dtype_ : torch.dtype
        Floating-point type of the network.
    loss_curve_ : list of float
        Training loss of each epoch: the weighted mean NLL per sample over its
        mini-batches, each taken before its optimiser step (original units,
        without the penalty).
    best_loss_ : float
        Smallest value of ``loss_curve_``.
    validation_scores_ : list of float or None
        Validation mean log-likelihood after each epoch, aligned with
        ``loss_curve_`` (NaN for epochs of earlier calls that ran without
        early stopping); None when the last :meth:`fit` did not use early
        stopping, and after :meth:`partial_fit` (which holds out no data).
    best_validation_score_ : float or None
        Best validation score of the last :meth:`fit`, whose weights the
        model holds; None as ``validation_scores_``.
    n_iter_ : int
        Number of epochs run over the model's life, ``len(loss_curve_)``:
        warm-started fits and :meth:`partial_fit` add to it, a fit without
        ``warm_start`` starts again (``MLPRegressor``'s counts the last call's
        epochs only). ``max_iter`` bounds each call.
    t_ : int
        Number of optimiser steps taken over the model's life, counted as
        ``n_iter_`` is (``MLPRegressor``'s counts samples).
    X_mean_, X_scale_, y_mean_, y_scale_ : ndarray
        Standardisation statistics (zeros and ones if ``standardize=False``),
        of the transformed target with ``target_transform``.

    See Also
    --------
    sklearn.neural_network.MLPRegressor : Point regression with an MLP.
    skmdn.GaussianMixture : The predictive distribution of :meth:`predict_dist`.

    Notes
    -----
    Fitted models pickle (and ``joblib.dump``) as plain numpy arrays, so they
    load on a machine without the device they were trained on (a CUDA model
    loads on the CPU with a warning; its ``device`` parameter is kept, so
    ``set_params(device='cpu')`` before training it further there). For the
    secure ``skops.io`` format, the types to trust after checking the file's
    origin are::

        import skops.io as sio
        sio.dump(model, "model.skops")
        sio.get_untrusted_types(file="model.skops")
        # ['skmdn._regressor.MDNRegressor', 'skmdn._training.TrainHistory']
        model = sio.load("model.skops", trusted=[
            "skmdn._regressor.MDNRegressor", "skmdn._training.TrainHistory"])

    A ``device`` given as a :class:`torch.device` adds ``'torch.device'`` to
    that list; its string (``'cuda:0'``) does not.

    Training threads: inside joblib (loky) or dask worker processes, training
    uses at most ``OMP_NUM_THREADS`` torch threads, which those back-ends set
    so that parallel fits share the cores (see ``GridSearchCV(n_jobs=...)``).

    References
    ----------
    C. M. Bishop, "Mixture Density Networks", Aston University, NCRG/94/004, 1994.

    Examples
    --------
    >>> import numpy as np
    >>> from skmdn import MDNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, size=(500, 1))
    >>> y = np.where(rng.random(500) < 0.5, -1.0, 1.0) + 0.1 * rng.normal(size=500)
    >>> model = MDNRegressor(n_components=3, max_iter=200, random_state=0).fit(X, y)
    >>> model.predict(X[:2]).shape
    (2,)
    >>> dist = model.predict_dist(X[:2])
    >>> dist.weights.shape, dist.means.shape
    ((2, 3), (2, 3, 1))
    >>> bool(model.score(X, y) > 0)
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "noise_type": [StrOptions(set(NOISE_TYPES))],
        "fixed_noise_level": [Interval(Real, 0, None, closed="neither"), None],
        "point_estimate": [StrOptions({"mean", "mode", "approx_mode"})],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [
            StrOptions({"tanh", "relu", "logistic", "gelu", "silu", "identity"})
        ],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"plateau", "constant"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "noise_regularization": [
            StrOptions({"auto", "always"}),
            Interval(Real, 0, None, closed="left"),
            None,
        ],
        "min_scale": [Interval(Real, 0, None, closed="left")],
        "standardize": ["boolean"],
        "target_transform": [StrOptions(set(TARGET_TRANSFORMS)), None],
        "precision": [StrOptions({"auto", "float32", "float64"})],
        "device": [str, torch.device],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        n_components: int = 5,
        noise_type: str = "diagonal",
        fixed_noise_level: float | None = None,
        point_estimate: str = "mean",
        hidden_layer_sizes: int | Sequence[int] = (64, 64),
        activation: str = "tanh",
        alpha: float = 1e-4,
        batch_size: int | str = "auto",
        learning_rate_init: float = 3e-3,
        learning_rate: str = "plateau",
        max_iter: int = 300,
        tol: float = 1e-4,
        n_iter_no_change: int = 50,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        noise_regularization: str | float | None = "auto",
        min_scale: float = 1e-3,
        standardize: bool = True,
        target_transform: str | None = None,
        precision: str = "auto",
        device: str | torch.device = "auto",
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        warm_start: bool = False,
    ) -> None:
        self.n_components = n_components
        self.noise_type = noise_type
        self.fixed_noise_level = fixed_noise_level
        self.point_estimate = point_estimate
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.noise_regularization = noise_regularization
        self.min_scale = min_scale
        self.standardize = standardize
        self.target_transform = target_transform
        self.precision = precision
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        # score() is a log-likelihood, not R^2, so the common check's R^2 > 0.5
        # threshold does not apply; tests/ checks R^2 of predict instead.
        tags.regressor_tags.poor_score = True
        return tags

    # ------------------------------------------------------------ validation
    def _check_params(self) -> None:
        """Checks across parameters that ``_parameter_constraints`` cannot express."""
        if self.noise_type == "fixed" and self.fixed_noise_level is None:
            raise ValueError(
                "noise_type='fixed' needs fixed_noise_level, the constant standard "
                "deviation of the noise in target units, e.g. fixed_noise_level=0.1."
            )
        resolve_device(self.device)  # checked on every fit, warm or not
        for name in _INTEGER_PARAMS:  # bool is an Integral to the constraints
            value = getattr(self, name)
            if isinstance(value, bool | np.bool_):
                raise InvalidParameterError(
                    f"The '{name}' parameter of MDNRegressor must be an int, not "
                    f"a bool; got {value!r}."
                )
        raw = self.hidden_layer_sizes
        items = raw if isinstance(raw, list | tuple) else [raw]
        hidden = np.atleast_1d(np.asarray(raw))
        if (
            hidden.ndim != 1
            # bools are Integral, and (True, 8) would read as (1, 8)
            or hidden.dtype == bool
            or any(isinstance(h, bool | np.bool_) for h in items)
            or not all(
                isinstance(h, Integral | np.integer) and h > 0 for h in hidden.tolist()
            )
        ):
            raise ValueError(
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} must be a positive "
                "integer or a sequence of positive integers, e.g. (64, 64)."
            )

    def _validate_fit_data(self, X, y, sample_weight, reset: bool):
        check_input_kind(X, "X")
        check_input_kind(y, "y")
        with non_finite_advice():
            X, y = validate_data(
                self,
                X,
                y,
                reset=reset,
                accept_sparse="csr",
                multi_output=True,
                y_numeric=True,
                dtype=[np.float64, np.float32],
            )
        univariate = y.ndim == 1
        Y = y.reshape(-1, 1) if univariate else y  # 2-D: check_input_kind
        sw = check_sample_weight(sample_weight, X)
        keep = sw > 0
        if not keep.all():  # zero weight is the same as no sample
            X, Y, sw = X[keep], Y[keep], sw[keep]
        return X, np.asarray(Y, dtype=np.float64), sw, univariate

    def _transform_targets(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``Y`` on the scale the network models (``target_transform``), and
        each row's ``log |dy / dz|`` (``sum_d z_d``), which turns a
        log-likelihood of ``z`` into one of ``y`` (None without a transform)."""
        if self.target_transform is None:
            return Y, None
        low = support_low(self.target_transform)
        outside = Y <= low
        if outside.any():
            other = (
                " Use target_transform='log1p' for targets >= 0 (counts and "
                "amounts with zeros), or shift y."
                if self.target_transform == "log" and Y.min() > -1
                else " Shift y into the support, or use target_transform=None."
            )
            raise ValueError(
                f"target_transform={self.target_transform!r} needs every target "
                f"> {low:g}, but {int(outside.sum())} of y's {Y.size} values are "
                f"not (the smallest is {Y.min():g}).{other}"
            )
        Z = to_transformed(Y, self.target_transform)
        return Z, Z.sum(axis=1)

    def _use_early_stopping(self, n_eff: float) -> bool:
        if self.early_stopping == "auto":
            return n_eff >= _AUTO_MIN_SAMPLES
        return bool(self.early_stopping)

    def _noise_level(self, n_eff: float, n_features: int, n_outputs: int) -> float:
        """Noise-regularisation standard deviation in standardised units, for
        ``n_eff`` effective samples (the bandwidth rule's ``n``)."""
        if self.noise_regularization is None:
            return 0.0
        if self.noise_regularization in ("auto", "always"):
            if self.noise_regularization == "auto" and n_eff >= _AUTO_MIN_SAMPLES:
                return 0.0
            return _NOISE_C * n_eff ** (-1.0 / (4 + n_features + n_outputs))
        return float(self.noise_regularization)

    def _weight_decay(self, sw: np.ndarray, dtype: torch.dtype) -> float:
        """``alpha / n`` with ``n`` the sum of the weights: zero, its limit,
        where that sum overflows (weights near 1e308). Refused where it
        overflows the training ``dtype`` (weights summing to below about
        1e-308 / alpha, or 1e-38 / alpha in float32): training failed there
        with advice about the learning rate."""
        with np.errstate(over="ignore", divide="ignore"):
            total = float(sw.sum())
            decay = self.alpha / total
        if decay > torch.finfo(dtype).max:
            raise ValueError(
                f"sample_weight sums to {total:.3g}, so the L2 penalty alpha / "
                f"sum(sample_weight) = {self.alpha:g} / {total:.3g} overflows "
                f"{str(dtype).removeprefix('torch.')}. The penalty counts a weight "
                "as that many repeated rows, so weights this small also make it "
                "dominate the fit: rescale them (only their ratios matter to the "
                "likelihood), e.g. sample_weight / sample_weight.mean(), or set "
                "alpha=0."
            )
        return decay

    def _resolve_batch_size(self, n: int, n_eff: float) -> int:
        if self.batch_size != "auto":
            return min(int(self.batch_size), n)  # torch refuses numpy integers
        if n_eff < _AUTO_MIN_SAMPLES:
            return n  # full batch: deterministic, weights == repeated rows
        # about 10 steps per epoch on small data, at most 256 rows a batch
        return min(n, max(_AUTO_BATCH_MIN, min(256, n // 10)))

    # ------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None) -> MDNRegressor:
        """Fit the model to data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; the loss is the weighted mean NLL, and an
            integer weight is equivalent to repeating the sample: the same
            objective and penalty, and the same fit (to rounding, which
            training can amplify to ~1e-6 relative) while the weights sum to
            less than 100. The ``'auto'`` settings of ``early_stopping``,
            ``batch_size`` and ``noise_regularization`` follow the effective
            sample size of the weights, not their sum, so above that repeated
            rows can switch them on (or, for ``noise_regularization``, off)
            where the weights do not: set ``early_stopping=False``,
            ``batch_size`` to at least the number of repeated rows and
            ``noise_regularization`` to a float or None for the same fit.
            Full-batch training without a validation split draws noise once
            per distinct row, so repeated rows share it; mini-batches or a
            split draw it per row, which keeps the objective only in
            expectation.

        Returns
        -------
        self : MDNRegressor
            The fitted estimator.
        """
        with _unchanged_on_error(self):
            return self._fit(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        warm = self.warm_start and hasattr(self, "network_")
        self._check_params()
        if warm:
            self._check_same_structure("warm_start=True")
        X, Y, sw, univariate = self._validate_fit_data(
            X, y, sample_weight, reset=not warm
        )
        Y, jacobian = self._transform_targets(Y)
        if warm and Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"warm_start=True continues a model fitted on {self.n_outputs_} "
                f"outputs, but y has {Y.shape[1]}. Set warm_start=False to refit."
            )
        seed = seed_from_random_state(self.random_state)
        state = (
            self._fresh_state(X, Y, sw, seed)
            if not warm
            else self._copy_state("warm_start=True")
        )
        train_rows = val_rows = None
        n_eff = _effective_sample_size(sw)
        early_stopping = self._use_early_stopping(n_eff)
        if early_stopping:
            n_val = int(np.ceil(self.validation_fraction * X.shape[0]))
            if X.shape[0] < 2 or X.shape[0] - n_val < 1:
                raise ValueError(
                    f"early_stopping=True holds out validation_fraction="
                    f"{self.validation_fraction} of the {X.shape[0]} samples with "
                    f"non-zero weight, which leaves {X.shape[0] - n_val} to train "
                    "on; it needs at least 2 samples and 1 left to train on. Lower "
                    "validation_fraction or set early_stopping=False."
                )
            train_rows, val_rows = _validation_split(X.shape[0], n_val, seed)
        data = state.tensors(X, Y, sw, train_rows, val_rows, jacobian)
        noise = self._noise_level(n_eff, X.shape[1], Y.shape[1])
        batch_size = self._resolve_batch_size(data.train.shape[0], n_eff)
        if noise > 0.0 and val_rows is None and batch_size >= data.train.shape[0]:
            # deterministic full-batch training: noise per distinct row, and
            # the rule's n counts them, so integer weights == repeated rows
            # (n_distinct <= n_eff: 'auto' applies here too; a float stays)
            data.noise_rows, n_distinct = distinct_rows(data)
            noise = self._noise_level(n_distinct, X.shape[1], Y.shape[1])
        data.x_noise = data.y_noise = noise
        history = TrainHistory() if not warm else copy.deepcopy(self._history)
        history.no_improvement_count = 0
        history.best_loss = np.inf
        history.best_validation_score = -np.inf
        optimizer = FlatAdam(
            state.network, self.learning_rate_init, self._weight_decay(sw, state.dtype)
        )
        if warm:  # continue Adam's moments too; the schedule restarts
            optimizer.load_state_dict(self._optimizer_state)
            optimizer.lr = float(self.learning_rate_init)
        n_before = history.n_iter
        # a continued fit draws a stream of its own: with the first call's,
        # every warm call replayed the same permutations and the same
        # "fresh" noise (noise_regularization), a fixed perturbation of the data
        generator = torch.Generator(device=state.device).manual_seed(
            seed if n_before == 0 else _continued_seed(seed, n_before)
        )
        steps = -(-data.train.shape[0] // batch_size)  # per epoch
        # the chooser reads the thread budget before torch is set to one thread
        chooser = ThreadChooser(self.n_threads, batch_size, state.device)
        torch_count = training_torch_threads(state.device, self.n_threads, batch_size)
        with torch_threads(torch_count):
            initial_loss = _initial_loss(state.network, data, seed)
            converged = train(
                state.network,
                optimizer,
                data,
                history,
                batch_size=batch_size,
                max_iter=self.max_iter,
                tol=self.tol,
                n_iter_no_change=_patience(self.n_iter_no_change, steps),
                early_stopping=early_stopping,
                generator=generator,
                verbose=self.verbose,
                threads=chooser,
                lr_decay_patience=(
                    _patience(max(1, self.n_iter_no_change // _LR_DECAY_DIVISOR), steps)
                    if self.learning_rate == "plateau"
                    else None
                ),
            )
        diverged = _warn_if_worse(initial_loss, history.loss_curve[n_before:], self)
        if (
            not converged
            and not diverged  # then "raise learning_rate_init" would mislead
            and history.n_iter - n_before >= self.max_iter
        ):
            warn_user(
                f"MDNRegressor reached max_iter={self.max_iter} epochs before the "
                "loss converged; raise max_iter or learning_rate_init"
                + ("." if early_stopping else ", or use early_stopping=True."),
                ConvergenceWarning,
            )
        if history.n_iter == n_before:  # rolled back to where it began: as it was
            return self
        self._set_fitted(
            state, history, optimizer, univariate, seed, early_stopping, n_before
        )
        return self

    # not skipping nested validation keeps the global skip_parameter_validation
    # readable inside, where a call to a fitted model validates (see _partial_fit)
    @_fit_context(prefer_skip_nested_validation=False)
    def partial_fit(self, X, y, sample_weight=None) -> MDNRegressor:
        """Train for one epoch on a batch of data (streaming, out-of-core).

        The first call initialises the model, including the standardisation
        statistics, which are computed from that first batch: make it
        representative. Later calls continue training with the same optimiser
        state: Adam's moments and its current learning rate (which the plateau
        schedule of an earlier :meth:`fit` may have lowered; a changed
        ``learning_rate_init`` applies from the next :meth:`fit`); ``X`` must
        keep the number of features and ``y`` the number of outputs, and the
        parameters that shape the network must keep their values (see
        ``warm_start``; a changed ``device`` moves the model there). Each
        call is one epoch over its batch, in mini-batches of ``batch_size``,
        without early stopping, noise regularisation or learning-rate
        schedule: ``early_stopping``, ``validation_fraction``,
        ``noise_regularization``, ``learning_rate``, ``max_iter``, ``tol``
        and ``n_iter_no_change`` apply to :meth:`fit` only.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : MDNRegressor
            The updated estimator.
        """
        with _unchanged_on_error(self):
            return self._partial_fit(X, y, sample_weight)

    def _partial_fit(self, X, y, sample_weight):
        first = not hasattr(self, "network_")
        if not first and not get_config()["skip_parameter_validation"]:
            # _fit_context validates a first call only, but later calls train
            # too: after set_params(alpha=nan) one trained nothing and blamed
            # learning_rate_init
            self._validate_params()
        self._check_params()
        if not first:
            self._check_same_structure("partial_fit")
        X, Y, sw, univariate = self._validate_fit_data(X, y, sample_weight, reset=first)
        Y, jacobian = self._transform_targets(Y)
        if not first and (
            Y.shape[1] != self.n_outputs_ or univariate != self._univariate
        ):
            raise ValueError(
                f"partial_fit got y with {Y.shape[1]} output(s) "
                f"({'1-D' if univariate else '2-D'}), but the model was fitted on "
                f"{self.n_outputs_} ({'1-D' if self._univariate else '2-D'}). Keep "
                "the shape of y across calls, or call fit to start over."
            )
        if first:
            seed = seed_from_random_state(self.random_state)
            state = self._fresh_state(X, Y, sw, seed)
            history = TrainHistory()
        else:
            seed = self._seed
            state = self._copy_state("partial_fit")
            # not a deep copy: its lists are appended to in place (a failed
            # call truncates them back, see _unchanged_on_error), so that a
            # call does not cost more as the history of a long stream grows
            history = copy.copy(self._history)
        optimizer = FlatAdam(
            state.network, self.learning_rate_init, self._weight_decay(sw, state.dtype)
        )
        if not first:
            optimizer.load_state_dict(self._optimizer_state)  # copies
        generator = torch.Generator(device=state.device).manual_seed(
            _continued_seed(seed, history.n_iter)
        )
        batch_size = self._resolve_batch_size(X.shape[0], _effective_sample_size(sw))
        # the chooser reads the thread budget before torch is set to one thread
        chooser = ThreadChooser(self.n_threads, batch_size, state.device)
        torch_count = training_torch_threads(state.device, self.n_threads, batch_size)
        n_before = history.n_iter
        with torch_threads(torch_count):
            train(
                state.network,
                optimizer,
                state.tensors(X, Y, sw, jacobian=jacobian),
                history,
                batch_size=batch_size,
                max_iter=1,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                early_stopping=False,
                generator=generator,
                verbose=self.verbose,
                stopping=False,
                threads=chooser,
            )
        if history.n_iter == n_before:  # rolled back to where it began: as it was
            return self
        self._set_fitted(state, history, optimizer, univariate, seed, n_before=n_before)
        return self

    # --------------------------------------------------------- fitted state
    def _fresh_state(self, X, Y: np.ndarray, sw: np.ndarray, seed: int) -> _State:
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.precision, X.dtype, device)
        if self.standardize:
            X_mean, X_scale = weighted_mean_scale(X, sw)
            y_mean, y_scale = weighted_mean_scale(Y, sw)
            _check_finite_statistics(X=(X_mean, X_scale), y=(y_mean, y_scale))
            # 'fixed' noise has no floor: its scale is given in target units
            floor = None if self.noise_type == "fixed" else self.min_scale
            for name, a, scale in (("X", X, X_scale), ("y", Y, y_scale)):
                columns = dominated_columns(a, sw, scale)
                _warn_if_dominated(name, columns, scale, floor)
            _warn_if_constant(Y, y_scale, floor)
        else:
            X_mean, X_scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
            y_mean, y_scale = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        # numpy integers (a grid from np.arange) would overflow or upset torch
        K, d = int(self.n_components), Y.shape[1]
        fixed = None
        if self.noise_type == "fixed":
            fixed = tuple(float(self.fixed_noise_level / s) for s in y_scale)
        config = {
            "n_features": X.shape[1],
            "n_outputs": d,
            "n_components": K,
            "hidden_layer_sizes": tuple(
                int(h) for h in np.atleast_1d(np.asarray(self.hidden_layer_sizes))
            ),
            "activation": self.activation,
            "noise_type": self.noise_type,
            "min_scale": float(self.min_scale),
            "fixed_scale": fixed,
        }
        # Initialise in float64 whatever the training precision, so that
        # float32 and float64 fits start from the same weights.
        network = MDNNetwork(**config, dtype=torch.float64)
        generator = torch.Generator().manual_seed(seed)
        # Components start at quantiles of y; on large data, of an evenly
        # spaced subsample (sorting 1e6 rows took a quarter of an epoch).
        every = -(-len(Y) // _QUANTILE_ROWS)
        Ys = (Y[::every] - y_mean) / y_scale
        mean_init = weighted_quantiles(Ys, sw[::every], (np.arange(K) + 0.5) / K)
        network.reset_parameters(
            generator,
            torch.as_tensor(mean_init, device="cpu"),
            scale_init=1.0 / np.sqrt(K),
        )
        network.to(device=device, dtype=dtype)
        return _State(network, config, device, dtype, X_mean, X_scale, y_mean, y_scale)

    def _copy_state(self, how: str) -> _State:
        """A copy of the fitted model for ``how`` (the call, for messages) to
        continue, on the device ``device`` resolves to now: after
        ``set_params(device=...)`` the model moves there (and Adam's moments
        with it, which :meth:`FlatAdam.load_state_dict` copies to the
        network's device). A float64 model cannot move to MPS. The fitted
        network stays as it is until the call succeeds."""
        device = resolve_device(self.device)
        if self.dtype_ == torch.float64 and device.type == "mps":
            raise ValueError(
                f"{how} continues a float64 model, but device={self.device!r} "
                "is MPS, which has no float64. Continue it on device='cpu' (or "
                f"where it was fitted, {self.device_!r}), or call fit with "
                "warm_start=False to build a float32 model on MPS."
            )
        # Rebuilt from its config and loaded with its state: the same
        # parameters bit for bit, in about 0.6 of the time of copy.deepcopy
        # (a cost every partial_fit call pays).
        network = MDNNetwork(**self._network_config, dtype=self.dtype_).to(device)
        network.load_state_dict(self.network_.state_dict())
        return _State(
            network,
            dict(self._network_config),
            device,
            self.dtype_,
            self.X_mean_,
            self.X_scale_,
            self.y_mean_,
            self.y_scale_,
        )

    def _set_fitted(
        self,
        state: _State,
        history: TrainHistory,
        optimizer: FlatAdam,
        univariate: bool,
        seed: int,
        early_stopping: bool = False,
        n_before: int = 0,
    ) -> None:
        """Publish a call's result; ``n_before`` epochs of ``history`` were
        published before it (with ``best_loss_``)."""
        self.network_ = state.network
        self._network_config = state.config
        self.device_ = str(state.device)
        self.dtype_ = state.dtype
        self.X_mean_, self.X_scale_ = state.X_mean, state.X_scale
        self.y_mean_, self.y_scale_ = state.y_mean, state.y_scale
        self.n_outputs_ = state.config["n_outputs"]
        self._univariate = univariate
        self._target_transform = self.target_transform
        self._seed = seed
        self._history = history
        self._optimizer_state = optimizer.state_dict()
        # the history's own list, and only the new epochs read: per call,
        # O(1) in the length of the history (a copy and a min over it made
        # each partial_fit of a stream of 1e5 chunks 17 times as slow)
        self.loss_curve_ = history.loss_curve
        best = self.best_loss_ if n_before else np.inf
        self.best_loss_ = min([best, *history.loss_curve[n_before:]])
        if early_stopping and history.validation_scores:
            self.validation_scores_ = list(history.validation_scores)
            self.best_validation_score_ = history.best_validation_score
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self.n_iter_ = history.n_iter
        self.t_ = history.t
        self._structure = self._structural_params()

    def _structural_params(self) -> dict:
        """The parameters that shape the fitted model (not how it trains)."""
        params = {name: getattr(self, name) for name in _STRUCTURAL_PARAMS}
        params["hidden_layer_sizes"] = tuple(
            int(h) for h in np.atleast_1d(np.asarray(self.hidden_layer_sizes))
        )
        return params

    def _check_same_structure(self, how: str) -> None:
        """Refuse to continue a fitted model under parameters it was not built
        with (they would be silently ignored)."""
        before = getattr(self, "_structure", None)  # None: pickled before 2026-12
        if before is None:
            return
        now = self._structural_params()
        # fixed_noise_level shapes only a model with fixed noise, min_scale
        # only the others (a change of noise_type is reported by itself)
        fixed = now["noise_type"] == "fixed"
        ignored = ("min_scale",) if fixed else ("fixed_noise_level",)
        changed = [
            f"{name}={before[name]!r} to {now[name]!r}"
            for name in _STRUCTURAL_PARAMS
            if name not in ignored and now[name] != before[name]
        ]
        if changed:
            raise ValueError(
                f"{how} continues the fitted model, but these parameters changed "
                f"since it was built: {', '.join(changed)}. Set them back, or call "
                "fit with warm_start=False to build a new model with them."
            )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    # ----------------------------------------------------------- prediction
    def predict_dist(self, X) -> GaussianMixture | TransformedMixture:
        """Predictive distribution ``p(y | x)`` for every row of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        GaussianMixture or TransformedMixture
            A batch of ``n_samples`` Gaussian mixtures in the original target
            units, with ``weights``, ``means``, ``covariances``, ``mean()``,
            ``cov()``, ``logpdf(y)``, ``pdf(y)``, ``cdf(y)``, ``ppf(q)``,
            ``interval(c)``, ``hdr(c)``, ``mode()`` and ``sample(...)``; with
            ``target_transform``, a :class:`~skmdn.TransformedMixture` (a
            mixture of log-normals) whose ``base`` is the Gaussian mixture
            of the transformed target.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import MDNRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.uniform(-1, 1, (100, 1))
        >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
        >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
        >>> dist = model.predict_dist(X[:3])
        >>> dist
        GaussianMixture(n=3, n_components=2, n_outputs=1, covariance='diagonal')
        >>> np.allclose(dist.mean(), model.predict(X[:3]))  # point_estimate='mean'
        True
        """
        X = self._validated_X(X)
        n = X.shape[0]
        K, d = self._network_config["n_components"], self.n_outputs_
        full = self._network_config["noise_type"] == "full"
        log_w, means = np.empty((n, K)), np.empty((n, K, d))
        scale = np.empty((n, K, d, d) if full else (n, K, d))

        def store(sl: slice, dist: GaussianMixture) -> None:
            log_w[sl], means[sl] = dist.log_weights, dist.means
            scale[sl] = dist.scale_tril if full else dist.scales

        self._map_chunks(X, self._chunk_dist, store)
        return self._of_y(self._mixture(log_w, means, scale))

    def _fitted_transform(self) -> str | None:
        """The ``target_transform`` the model was fitted with (None for
        models pickled before it existed)."""
        return getattr(self, "_target_transform", None)

    def _of_y(self, dist: GaussianMixture) -> GaussianMixture | TransformedMixture:
        """The distribution of ``y`` whose transformed target has the
        network's mixture ``dist`` (``dist`` itself without
        ``target_transform``)."""
        transform = self._fitted_transform()
        return dist if transform is None else TransformedMixture(dist, transform)

    def _mixture(
        self, log_w: np.ndarray, means: np.ndarray, scale: np.ndarray
    ) -> GaussianMixture:
        """A :class:`GaussianMixture` of this model's kind from its arrays in
        target units (``scale``: Cholesky factors for ``'full'`` noise,
        standard deviations otherwise)."""
        full = self._network_config["noise_type"] == "full"
        kind = "scale_tril" if full else "scales"
        return GaussianMixture._trusted(
            log_w,
            means,
            **{kind: scale},
            univariate=self._univariate,
            n_threads=self.n_threads,
        )

    def _validated_X(self, X) -> np.ndarray:
        """``X`` checked for a fitted model: a float32 or float64 array."""
        check_is_fitted(self)
        self._check_inference_params()
        check_input_kind(X, "X")
        with non_finite_advice():
            return validate_data(
                self,
                X,
                reset=False,
                accept_sparse="csr",
                dtype=[np.float64, np.float32],
            )

    def _check_inference_params(self) -> None:
        """Validate the parameters that inference reads, as fit validates
        them: ``set_params`` after fit bypasses fit, and a typo such as
        ``point_estimate='Mode'`` must not silently predict the mean."""
        if get_config()["skip_parameter_validation"]:
            return
        validate_parameter_constraints(
            {name: self._parameter_constraints[name] for name in _INFERENCE_PARAMS},
            {name: getattr(self, name) for name in _INFERENCE_PARAMS},
            caller_name=type(self).__name__,
        )

    def _map_dists(self, X: np.ndarray, fn: Callable[[slice, object], None]) -> None:
        """Call ``fn(rows, predictive distribution of those rows)`` per chunk
        (see :meth:`_map_chunks`), in the units of ``y``."""
        self._map_chunks(X, lambda *args: self._of_y(self._chunk_dist(*args)), fn)

    def _map_chunks(
        self, X: np.ndarray, chunk: Callable, fn: Callable[[slice, object], None]
    ) -> None:
        """Call ``fn(rows, chunk(X, rows, stats, device))`` per chunk of rows,
        ``chunk`` being :meth:`_chunk_dist` or :meth:`_chunk_locations`.

        Standardisation, the forward pass and the move to original units all
        happen per chunk, so no N-sized intermediate is ever built. On the CPU
        the chunks run on worker threads (as many as the thread budget, or
        ``n_threads``), each with one torch thread: every part of inference,
        numpy's included, then runs in parallel (1e6 rows: see
        benchmarks/README.md), no OpenMP barrier waits for a core that another
        process holds, and each chunk's arithmetic is the same whatever the
        number of workers, so results are too. ``fn`` must only write the
        rows it is given.
        """
        n = X.shape[0]
        device = torch.device(self.device_)
        # Standardisation and the move to target units run in torch float64 on
        # the CPU (numpy's broadcasting over a last axis of d = 1 or 2 was the
        # slowest part of predict, measured in benchmarks/speed.py); only the
        # network runs on the device, which need not support float64 (MPS).
        # (read-only views: a model loaded with joblib's mmap_mode='r' holds
        # these in read-only memory maps)
        X_mean, X_scale, y_mean, y_scale = (
            tensor_view(np.asarray(a, dtype=np.float64))
            for a in (self.X_mean_, self.X_scale_, self.y_mean_, self.y_scale_)
        )
        # y's statistics once per component too, for (n, K d) rows (see
        # _to_target_units; repeating them per chunk took 14 us a call)
        K = self._network_config["n_components"]
        stats = _Statistics(
            X_mean, X_scale, y_mean, y_scale, y_mean.repeat(K), y_scale.repeat(K)
        )
        step = _PREDICT_CHUNK
        rows = [slice(i, min(i + step, n)) for i in range(0, n, step)]

        def run(sl: slice) -> None:
            with torch.inference_mode():
                fn(sl, chunk(X, sl, stats, device))

        on_cpu = cpu_fast_path(device)
        if on_cpu:  # time the tanh forms (once per process) here, not in a worker
            tanh_forms(self.dtype_)
        workers = thread_count(self.n_threads, n) if on_cpu else 1
        with torch_threads(1 if on_cpu else thread_count(self.n_threads, n)):
            run_blocks(run, rows, workers)

    def _chunk_dist(
        self,
        X: np.ndarray,
        sl: slice,
        stats: _Statistics,
        device: torch.device,
    ) -> GaussianMixture:
        """The predictive distribution of rows ``sl`` of ``X`` (see _map_dists)."""
        full = self._network_config["noise_type"] == "full"
        rows, x = _chunk_input(X, sl, stats, device, self.dtype_)
        params = self.network_(x)
        scale = params.scale_tril if full else params.scales
        log_w = to_numpy(params.log_weights)
        means = _means_to_target_units(params.means, stats)
        if full:  # row i of a Cholesky factor scales with output i
            scale = to_numpy(scale.cpu() * stats.y_scale[:, None])
        else:
            scale = _to_target_units(scale.cpu(), (stats.y_scale, stats.y_scale_rows))
        _check_finite_output(
            rows, self.X_mean_, self.X_scale_, log_w, means, scale, self.dtype_,
            offset=sl.start,
        )  # fmt: skip
        return self._mixture(log_w, means, scale)

    def _chunk_locations(
        self,
        X: np.ndarray,
        sl: slice,
        stats: _Statistics,
        device: torch.device,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Log-weights (n, K) and means (n, K, d, target units) of rows ``sl``
        of ``X``: :meth:`_chunk_dist`'s arrays without the scales, which the
        mean and the approximate mode do not need (the same bits)."""
        rows, x = _chunk_input(X, sl, stats, device, self.dtype_)
        log_w, means = self.network_.locations(x)
        log_w, means = to_numpy(log_w), _means_to_target_units(means, stats)
        _check_finite_output(
            rows, self.X_mean_, self.X_scale_, log_w, means, None, self.dtype_,
            offset=sl.start,
        )  # fmt: skip
        return log_w, means

    def predict(
        self, X, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Point prediction selected by ``point_estimate``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        return_std : bool, default=False
            Also return the standard deviation of ``p(y | x)`` (of each
            output's marginal), as scikit-learn's probabilistic regressors
            do (``BayesianRidge``, ``GaussianProcessRegressor``; used by
            ``IterativeImputer(sample_posterior=True)``). It describes the
            whole mixture, whatever ``point_estimate`` is: a multimodal
            ``p(y | x)`` is not summarised by a mean and a standard
            deviation, see :meth:`predict_interval` for that.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The conditional mean (``point_estimate='mean'``), the mode
            (``'mode'``) or the mean of the most probable component
            (``'approx_mode'``), in target units.
        y_std : ndarray of the same shape
            Only with ``return_std=True``.
        """
        X = self._validated_X(X)
        n = X.shape[0]
        shape = (n,) if self._univariate else (n, self.n_outputs_)
        out = np.empty(shape)
        transform = self._fitted_transform()
        if (
            self.point_estimate in _LOCATION_ESTIMATES
            and not return_std
            and transform is None
        ):
            # the weights and means suffice: no scales built (faster)
            location = _LOCATION_ESTIMATES[self.point_estimate]

            def store_location(sl: slice, params: tuple) -> None:
                estimate = location(*params)
                out[sl] = estimate[:, 0] if self._univariate else estimate

            self._map_chunks(X, self._chunk_locations, store_location)
            return out
        std = np.empty(shape) if return_std else None
        estimate = self.point_estimate  # mean, approx_mode or mode: a method

        def store(sl: slice, dist: GaussianMixture) -> None:
            out[sl] = getattr(dist, estimate)()
            if std is not None:
                std[sl] = dist.std()

        self._map_dists(X, store)
        return (out, std) if return_std else out

    def predict_interval(
        self, X, confidence: float = 0.9, kind: str = "central"
    ) -> np.ndarray | HighestDensityRegion:
        """Prediction intervals of probability ``confidence`` for every row.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        confidence : float, default=0.9
            Probability content, in (0, 1).
        kind : {'central', 'hdr'}, default='central'
            ``'central'``: the equal-tailed interval between the quantiles
            ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``.
            ``'hdr'``: the highest-density region, the shortest set with that
            probability, which for a multimodal density is a union of
            disjoint intervals (1-D targets only).

        Returns
        -------
        ndarray or HighestDensityRegion
            ``'central'``: shape (n_samples, 2) of ``[lower, upper]``, or
            (n_samples, n_outputs, 2) of marginal intervals. ``'hdr'``: a
            :class:`~skmdn.HighestDensityRegion` (NaN-padded intervals of
            shape (n_samples, max_intervals, 2) and a count per row).

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import MDNRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.uniform(-1, 1, (100, 1))
        >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
        >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
        >>> model.predict_interval(X[:3], confidence=0.8).shape  # [lower, upper]
        (3, 2)
        >>> region = model.predict_interval(X[:3], confidence=0.8, kind="hdr")
        >>> len(region), region.confidence  # a union of intervals per row
        (3, 0.8)
        """
        if kind not in ("central", "hdr"):
            raise ValueError(f"kind must be 'central' or 'hdr'; got {kind!r}.")
        check_is_fitted(self)
        if kind == "hdr" and self.n_outputs_ > 1:  # before predicting
            raise ValueError(
                f"kind='hdr' needs a 1-D target, but the model has {self.n_outputs_} "
                "outputs: for output j use model.predict_dist(X).marginal(j)"
                f".hdr({confidence!r}), or kind='central' for every output."
            )
        transform = self._fitted_transform()
        if kind == "hdr" and transform is not None:
            raise ValueError(
                f"kind='hdr' is not available with target_transform={transform!r}: "
                "the highest-density region of y is not the image of the one of "
                "the transformed target. Use kind='central' (exact), or "
                "model.predict_dist(X).base.hdr(confidence) for the region of "
                "the transformed target."
            )
        dist = self.predict_dist(X)
        return dist.interval(confidence) if kind == "central" else dist.hdr(confidence)

    def predict_quantiles(self, X, q) -> np.ndarray:
        """Predict the quantiles of ``p(y | x)`` (marginal for multi-output models).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        q : float or array-like of shape (n_quantiles,)
            Levels in [0, 1].

        Returns
        -------
        ndarray
            Shape (n_samples,) or (n_samples, n_outputs) for a scalar ``q``;
            (n_samples, n_quantiles) or (n_samples, n_quantiles, n_outputs)
            otherwise. Exact to ``max(4 eps |y|, 1e-12 s_min)``, ``s_min``
            the row's smallest component scale (see :meth:`GaussianMixture.ppf`).

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import MDNRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.uniform(-1, 1, (100, 1))
        >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
        >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
        >>> q = model.predict_quantiles(X[:3], [0.1, 0.5, 0.9])
        >>> q.shape, bool(np.all(np.diff(q, axis=1) > 0))
        ((3, 3), True)
        >>> np.allclose(q[:, [0, 2]], model.predict_interval(X[:3], confidence=0.8))
        True
        """
        return self.predict_dist(X).quantile(q)

    def sample(
        self,
        X,
        n_samples: int = 1,
        random_state=None,
        *,
        temperature: float = 1.0,
        scale_temperature: float = 1.0,
    ) -> np.ndarray:
        """Draw samples from ``p(y | x)`` for every row of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            Input data.
        n_samples : int, default=1
            Draws per row.
        random_state : int, Generator, RandomState or None, default=None
            Seed of a private generator; global random states are untouched.
        temperature, scale_temperature : float, default=1.0
            Sample from the tempered mixture: weights ``pi_k^(1/temperature)``
            renormalised, standard deviations times
            ``sqrt(scale_temperature)`` (see :meth:`GaussianMixture.tempered`).

        Returns
        -------
        ndarray of shape (n_rows, n_samples) or (n_rows, n_samples, n_outputs)
            The first for a model fitted on 1-D ``y``.

        Examples
        --------
        >>> import numpy as np
        >>> from skmdn import MDNRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.uniform(-1, 1, (100, 1))
        >>> y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=100)
        >>> model = MDNRegressor(n_components=2, max_iter=5, random_state=0).fit(X, y)
        >>> draws = model.sample(X[:3], n_samples=4, random_state=0)
        >>> draws.shape
        (3, 4)
        >>> np.array_equal(draws, model.predict_dist(X[:3]).sample(4, random_state=0))
        True
        """
        n_samples = check_n_samples(n_samples)
        if temperature != 1.0 or scale_temperature != 1.0:
            return self.predict_dist(X).sample(
                n_samples,
                random_state=random_state,
                temperature=temperature,
                scale_temperature=scale_temperature,
            )
        X = self._validated_X(X)
        n = X.shape[0]
        # The same streams, one per chunk, as predict_dist(X).sample(...).
        seeds = sample_seeds(random_state, n)
        out = np.empty((n, n_samples, self.n_outputs_))

        def store(sl: slice, dist: GaussianMixture) -> None:
            out[sl] = dist._draws(seeds[sl.start // _PREDICT_CHUNK], n_samples)

        self._map_dists(X, store)
        return out[..., 0] if self._univariate else out

    def score(self, X, y, sample_weight=None) -> float:
        """Mean log-likelihood per sample, in original target units (nats).

        Higher is better, so model selection by ``GridSearchCV`` picks the
        model with the best held-out likelihood. Equals
        ``np.average(self.predict_dist(X).logpdf(y), weights=sample_weight)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        float
            Weighted mean of ``log p(y | x)``.
        """
        X = self._validated_X(X)
        n = X.shape[0]
        check_input_kind(y, "y")
        if np.ndim(y) == 0:  # None or a scalar: no rows to index
            raise ValueError(
                "y must hold one target per row of X, an array of shape "
                f"(n_samples,) or (n_samples, n_outputs); got {y!r}."
            )
        y = np.asarray(y, dtype=np.float64)
        y = target_shape(y, self._univariate, self.n_outputs_)
        want = (n,) if self._univariate else (n, self.n_outputs_)
        if y.shape[1:] != want[1:]:  # before any prediction is computed
            fitted = (
                "a 1-D y" if self._univariate else f"y of {self.n_outputs_} columns"
            )
            raise ValueError(
                f"y has shape {y.shape}, but the model was fitted on {fitted}: "
                f"pass y of shape {want}, one target per row of X."
            )
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} rows but X has {n}.")
        check_finite_targets(y)
        sw = None
        if sample_weight is not None:
            sw = check_sample_weight(sample_weight, y.reshape(len(y), -1))
        logpdf = np.empty(n)

        def store(sl: slice, dist: GaussianMixture) -> None:
            logpdf[sl] = dist.logpdf(y[sl])

        self._map_dists(X, store)
        return float(np.average(logpdf, weights=overflow_safe_weights(sw)))

    # ----------------------------------------------------------- persistence
    def __getstate__(self):
        # Plain numpy arrays and strings only (no torch objects), so that pickle,
        # joblib and skops (which cannot serialise tensors) all work; the
        # network is rebuilt from its config on load.
        state = dict(super().__getstate__())  # a copy: never mutate self
        network = state.pop("network_", None)
        if network is not None:
            state["_network_state"] = _to_numpy_tree(network.state_dict())
        if "_optimizer_state" in state:
            state["_optimizer_state"] = _to_numpy_tree(state["_optimizer_state"])
        if isinstance(state.get("dtype_"), torch.dtype):
            state["dtype_"] = str(state["dtype_"]).removeprefix("torch.")
        return state

    def __setstate__(self, state):
        state = dict(state)
        network_state = state.pop("_network_state", None)
        if isinstance(state.get("dtype_"), str):
            state["dtype_"] = getattr(torch, state["dtype_"])
        if "_optimizer_state" in state:
            state["_optimizer_state"] = _to_tensor_tree(state["_optimizer_state"])
        super().__setstate__(state)
        if network_state is not None:
            device = resolve_device(self.device_, fallback=True)
            network = MDNNetwork(**self._network_config, dtype=self.dtype_)
            network.load_state_dict(_to_tensor_tree(network_state))
            self.network_ = network.to(device)
            self.device_ = str(device)


@contextlib.contextmanager
def _unchanged_on_error(model: MDNRegressor):
    """Put every attribute of ``model`` back if the block raises (an error or
    an interrupt): a failed fit leaves a fitted model as it was, and an
    unfitted one unfitted (``validate_data`` sets ``n_features_in_`` before
    later checks can still fail)."""
    saved = dict(vars(model))
    # partial_fit appends to the history's lists in place: cut them back too
    history = saved.get("_history")
    lengths = (
        (len(history.loss_curve), len(history.validation_scores))
        if history is not None
        else None
    )
    try:
        yield
    except BaseException:
        vars(model).clear()
        vars(model).update(saved)
        if lengths is not None:
            del history.loss_curve[lengths[0] :]
            del history.validation_scores[lengths[1] :]
        raise


@dataclass
class _State:
    """What one fit works on, kept apart from ``self`` until training ends."""

    network: MDNNetwork
    config: dict
    device: torch.device
    dtype: torch.dtype
    X_mean: np.ndarray
    X_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray

    def tensors(
        self,
        X,
        Y: np.ndarray,
        w: np.ndarray,
        train_rows: np.ndarray | None = None,
        val_rows: np.ndarray | None = None,
        jacobian: np.ndarray | None = None,
    ) -> TrainData:
        """Standardised, packed ``[x, y, w]`` tensors of the rows ``train_rows``
        (all rows if None) and ``val_rows`` (no validation data if None), built
        by :func:`~skmdn._data.pack_rows`. ``jacobian``, each row's
        ``log |dy / dz|`` under ``target_transform`` (None without one), adds
        its weighted mean over the training and the validation rows to the
        reported NLLs, so that they are NLLs of ``y``.
        """
        columns = [
            (X, self.X_mean, self.X_scale),
            (Y, self.y_mean, self.y_scale),
            # divided by their mean, computed without overflow (1e308 weights)
            (w.reshape(-1, 1), np.zeros(1), np.full(1, _mean_weight(w))),
        ]

        def pack(rows):
            return pack_rows(rows, columns, self.dtype).to(self.device)

        log_scale = float(np.sum(np.log(self.y_scale)))

        def log_det(rows) -> float:
            if jacobian is None:
                return log_scale
            rows = slice(None) if rows is None else rows
            weights = overflow_safe_weights(w[rows])
            return log_scale + float(np.average(jacobian[rows], weights=weights))

        return TrainData(
            train=pack(train_rows),  # None: all rows
            n_features=X.shape[1],
            log_scale=log_det(train_rows),
            val=None if val_rows is None else pack(val_rows),
            val_log_scale=None if val_rows is None else log_det(val_rows),
        )


def _validation_split(n: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows of ``n``, sorted: those of
    ``train_test_split(np.arange(n), test_size=n_val, random_state=seed % 2**32)``.

    The same permutation as scikit-learn's ``ShuffleSplit`` draws, without
    the parameter validation and indexing of ``train_test_split`` (0.3 ms,
    a fixed cost of every fit). Sorted: gathering rows in order is 2x faster
    on large data, and each epoch draws its own permutation anyway.
    """
    perm = np.random.RandomState(seed % (2**32)).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _mean_weight(w: np.ndarray) -> float:
    """``np.mean(w)``, but finite when ``sum(w)`` overflows."""
    with np.errstate(over="ignore"):
        mean = np.mean(w)
    if np.isfinite(mean):
        return float(mean)
    # scaled by a power of two and back: exact
    return float(np.ldexp(np.mean(overflow_safe_weights(w)), np.frexp(w.max())[1]))


def _initial_loss(network: MDNNetwork, data: TrainData, seed: int) -> float:
    """Mean NLL (original units) of ``network`` before training, as
    ``loss_curve_`` measures it, for :func:`_warn_if_worse`.

    On an evenly spaced subsample of at most :data:`_INITIAL_LOSS_ROWS`
    training rows (the warning has a margin of 1 nat, and a full pass would
    cost an epoch's forward), with the training's noise if any: the loss
    curve is then on noisy data, and a model continued (``warm_start``) with
    ``noise_regularization`` from a fit without it read as diverged. The
    noise comes from a generator of its own, so training draws as before.
    """
    every = -(-data.train.shape[0] // _INITIAL_LOSS_ROWS)
    x, y, w = data.columns(data.train[::every])
    if data.x_noise > 0.0 or data.y_noise > 0.0:
        generator = torch.Generator(device=x.device).manual_seed(seed)
        x = x + data.x_noise * _randn_like(x, generator)
        y = y + data.y_noise * _randn_like(y, generator)
    return data.log_scale - mean_log_likelihood(network, x, y, w)


def _warn_if_worse(initial_loss: float, losses: list[float], model) -> bool:
    """Warn when even the best epoch is worse than the untrained network: the
    classic symptom of a learning rate so large that training diverged.
    Returns whether it warned."""
    worse = bool(losses) and min(losses) > initial_loss + 1.0
    if worse:
        lr = model.learning_rate_init
        warn_user(
            f"Training made the model worse: the best training loss "
            f"({min(losses):.4g} nats) exceeds the loss at initialisation "
            f"({initial_loss:.4g}) by more than 1 nat per sample, so training "
            f"diverged. Lower learning_rate_init (now {lr:g}), e.g. to {lr / 10:g}.",
            ConvergenceWarning,
        )
    return worse


def _warn_if_dominated(
    name: str, columns: list[tuple[int, float]], scale, min_scale: float | None
) -> None:
    """Warn that a few extreme values dominate the standardisation of the
    ``columns`` of ``X`` or ``y`` (see :func:`~skmdn._data.dominated_columns`);
    ``min_scale`` None when the scales have no floor (``noise_type='fixed'``)."""
    if not columns:
        return
    j, ratio = max(columns, key=lambda c: c[1])
    more = f" (and {len(columns) - 1} more)" if len(columns) > 1 else ""
    floor = (
        f", and the density's scales are floored at min_scale * {scale[j]:.3g} "
        f"= {min_scale * scale[j]:.3g}"
        if name == "y" and min_scale is not None
        else ""
    )
    warn_user(
        f"{name} column {j}{more}: its standard deviation ({scale[j]:.3g}) is "
        f"{ratio:.0f} times the {scale[j] / ratio:.3g} that its central 90 % of "
        "values implies ((q95 - q05) / 3.29, a normal's). A few "
        "extreme values dominate the internal standardisation and squeeze the "
        f"other rows into a tiny range{floor}, which can spoil the fit. Check "
        "those values (outliers, wrong units, codes such as -999 or 1e9); if "
        "they are genuine, transform the column first (e.g. a log, or "
        "scikit-learn's QuantileTransformer for X).",
        UserWarning,
    )


def _warn_if_constant(Y: np.ndarray, y_scale: np.ndarray, floor: float | None) -> None:
    """Warn that a column of ``Y`` (two or more rows) is one value.

    Its density is a point mass, which the model approaches with its scales
    at the floor, so ``score`` rises with training (+4 nats in 40 epochs,
    measured) and reflects ``min_scale``, not the data. A constant column's
    standardisation scale is exactly 1 (see
    :func:`~skmdn._data.weighted_mean_scale`), so only such columns are
    compared with their first value.
    """
    if Y.shape[0] < 2:  # one row: every column is one value, nothing to say
        return
    for j in np.flatnonzero(y_scale == 1.0):
        if (Y[:, j] == Y[0, j]).all():
            floor_text = (
                f" at the floor min_scale = {floor:g} (in y's units)"
                if floor is not None
                else ""
            )
            warn_user(
                f"y column {j} is constant (every training value is "
                f"{Y[0, j]:g}): its density is a point mass, which the model "
                f"approaches with its scales{floor_text}, so score and the "
                "densities of that column reflect the floor, not the data. "
                "Drop the column (it needs no model), or check the data.",
                UserWarning,
            )


_ASSUME_FINITE = "sklearn.set_config(assume_finite=True) is on"


def _check_finite_statistics(**stats: tuple[np.ndarray, np.ndarray]) -> None:
    """Name the data whose standardisation statistics are not finite.

    scikit-learn's input checks reject NaN and infinity unless
    ``assume_finite=True``; then they reached training, whose first epoch
    failed with advice about the learning rate. Every finite input (even near
    1.8e308) has finite statistics, so these show it at no cost.
    """
    advice = {"X": "drop or impute those values", "y": "drop those rows"}
    for name, (mean, scale) in stats.items():
        bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(scale)))
        if len(bad):
            raise ValueError(
                f"{name} contains NaN or infinity (in column {bad[0]}), which "
                f"scikit-learn did not check because {_ASSUME_FINITE}: "
                f"{advice[name]} first (turn assume_finite off to have them "
                "located)."
            )


class _Statistics(NamedTuple):
    """A fitted model's standardisation statistics for inference, float64
    tensors on the CPU (see :meth:`MDNRegressor._map_chunks`): those of X and
    y, and y's repeated once per component for (n, K d) rows."""

    X_mean: torch.Tensor
    X_scale: torch.Tensor
    y_mean: torch.Tensor
    y_scale: torch.Tensor
    y_mean_rows: torch.Tensor
    y_scale_rows: torch.Tensor


def _chunk_input(
    X: np.ndarray,
    sl: slice,
    stats: _Statistics,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[np.ndarray, torch.Tensor]:
    """Rows ``sl`` of ``X`` as a dense array and, standardised by ``stats``,
    as the network's input on ``device`` in ``dtype``."""
    # float32 X is promoted to float64 by the arithmetic itself (a conversion
    # pass less); row-major whatever X's layout (a DataFrame's is
    # column-major): the products' rounding depends on it, and results must not
    rows = dense_rows(X, sl)
    x = torch.sub(tensor_view(rows).contiguous(), stats.X_mean).div_(stats.X_scale)
    return rows, x.to(device, dtype)


def _means_to_target_units(means: torch.Tensor, stats: _Statistics) -> np.ndarray:
    """The network's means (n, K, d) in target units, float64 numpy."""
    return _to_target_units(
        means.cpu(),
        (stats.y_scale, stats.y_scale_rows),
        (stats.y_mean, stats.y_mean_rows),
    )


def _to_target_units(
    t: torch.Tensor,
    scale: tuple[torch.Tensor, torch.Tensor],
    shift: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> np.ndarray:
    """``shift + t * scale`` (one ``addcmul``), or ``t * scale``, in float64
    as a numpy array: ``t`` of shape (n, K, d) on the CPU; ``scale`` and
    ``shift`` each a float64 statistic of shape (d,) and the same repeated K
    times.

    For d > 1 the values are taken as (n, K d) rows against the repeated
    statistics: torch's elementwise kernels ran a last axis of d = 2 values
    element by element (16384 rows, K = 5, float32 network outputs: means
    603 against 245 us, scales 213 against 79 us, measured). Each value meets
    the same statistic in the same operation, so the bits are the same.
    """
    n, K, d = t.shape
    which = 0
    if d > 1 and t.stride(2) == 1 and t.stride(1) == d:
        t, which = t.view(n, K * d), 1
    if shift is None:
        out = t * scale[which]
    else:
        out = torch.addcmul(shift[which], t, scale[which])
    return to_numpy(out.view(n, K, d))


def _check_finite_output(
    X, X_mean, X_scale, log_w, means, scale, dtype, offset: int = 0
) -> None:
    """Never return a silent NaN: name the rows whose parameters overflowed."""
    # finite terms near 1e308 may overflow, to inf - inf if of both signs
    arrays = (log_w, means) if scale is None else (log_w, means, scale)
    with np.errstate(over="ignore", invalid="ignore"):
        if all(np.isfinite(np.sum(a)) for a in arrays):
            return  # one pass each; a sum is non-finite if any term is
    n = len(log_w)
    ok = np.logical_and.reduce([np.isfinite(a.reshape(n, -1)).all(1) for a in arrays])
    if ok.all():
        return
    bad = np.flatnonzero(~ok)
    missing = bad[~np.isfinite(X[bad]).all(1)]
    if len(missing):
        raise ValueError(
            f"X contains NaN or infinity in {len(missing)} row(s) (first: row "
            f"{missing[0] + offset}), which scikit-learn did not check because "
            f"{_ASSUME_FINITE}: drop or impute those values first."
        )
    far = float(np.max(np.abs((X[bad] - X_mean) / X_scale)))
    raise ValueError(
        f"The network produced non-finite mixture parameters for {len(bad)} row(s) "
        f"of X (first: row {bad[0] + offset}), whose standardised features "
        f"reach {far:.3g} "
        f"(the network computes in {str(dtype).removeprefix('torch.')}). These "
        "inputs are far outside the training data: check X for outliers or wrong "
        "units, or refit with precision='float64'."
    )


def _to_numpy_tree(obj):
    """Tensors (at any depth of dicts: a state dict, the optimiser's state)
    to CPU numpy arrays."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {k: _to_numpy_tree(v) for k, v in obj.items()}
    return obj


def _to_tensor_tree(obj):
    """Inverse of :func:`_to_numpy_tree` (older pickles hold tensors: kept)."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, dict):
        return {k: _to_tensor_tree(v) for k, v in obj.items()}
    return obj
