"""Echo State Network: a fixed random reservoir (cell + layer) and a ridge-regression readout.

Only the readout of an ESN is trained, in closed form; the reservoir matrices are drawn
once from a seed and never change (Jaeger 2001; Lukoševičius 2012, "A practical guide to
applying echo state networks"). The random draws follow ReservoirPy 0.4.2's defaults so
the two can be compared like for like: Gaussian recurrent weights, ±1 input and bias weights.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
import scipy.linalg

from pipeline.errors import PipelineError
from pipeline.layers.cell_layer import CellArgumentsConfig, PrecomputedDrive

logger = logging.getLogger(__name__)


def _check_number(name: str, value: Any, *, low: float, high: float = np.inf,
                  low_open: bool = True, high_open: bool = False) -> float:
    """Return ``value`` as a float or raise a ValueError naming ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    number = float(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if not np.isfinite(number) or too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"Argument `{name}` must be in {interval}. Received: {name}={value!r}")
    return number


def _check_count(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Argument `{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _sparse_positions(rng: np.random.Generator, shape: tuple[int, int], density: float, name: str) -> np.ndarray:
    """Flat indices of exactly ``round(density * size)`` distinct entries of a ``shape`` matrix."""
    size = shape[0] * shape[1]
    count = int(round(density * size))
    if count == 0:
        raise ValueError(f"Argument `{name}`={density!r} leaves no non-zero weight in a {shape} matrix; raise it.")
    return rng.choice(size, size=count, replace=False)


def reservoir_matrices(units: int, input_dim: int, *, spectral_radius: float, input_scaling: float,
                       connectivity: float, input_connectivity: float, bias_scaling: float,
                       seed: int) -> dict[str, np.ndarray]:
    """Draw the reservoir matrices in float64, in Keras (row vector) orientation.

    ``SeedSequence(seed).spawn(3)`` gives one child generator each for W, W_in and the
    bias, so changing one draw never shifts another.

    Returns:
        ``{"input_kernel": (input_dim, units), "bias": (units,), "recurrent_kernel": (units, units)}``
        where ``input_kernel = W_inᵀ`` without its bias column, ``bias`` is that column and
        ``recurrent_kernel = Wᵀ``. W has ``round(connectivity * units²)`` Gaussian entries,
        rescaled so that its largest absolute eigenvalue equals ``spectral_radius``; W_in has
        ``round(input_connectivity * units * input_dim)`` entries ±``input_scaling``; the
        bias is dense, ±``bias_scaling``.
    """
    recurrent_rng, input_rng, bias_rng = (np.random.default_rng(child) for child in
                                          np.random.SeedSequence(seed).spawn(3))
    recurrent = np.zeros(units * units)
    positions = _sparse_positions(recurrent_rng, (units, units), connectivity, "connectivity")
    recurrent[positions] = recurrent_rng.standard_normal(positions.size)
    recurrent = recurrent.reshape(units, units)
    current_radius = float(np.max(np.abs(np.linalg.eigvals(recurrent))))
    if current_radius < 1e-12:
        raise ValueError(f"The recurrent matrix drawn with units={units}, connectivity={connectivity!r} "
                         f"has spectral radius 0 and cannot be rescaled; raise `connectivity` or `units`.")
    recurrent *= spectral_radius / current_radius

    input_weights = np.zeros(units * input_dim)
    positions = _sparse_positions(input_rng, (units, input_dim), input_connectivity, "input_connectivity")
    input_weights[positions] = input_rng.choice([-1.0, 1.0], size=positions.size) * input_scaling
    bias = bias_rng.choice([-1.0, 1.0], size=units) * bias_scaling
    return {"input_kernel": input_weights.reshape(units, input_dim).T.copy(), "bias": bias,
            "recurrent_kernel": recurrent.T.copy()}


@keras.saving.register_keras_serializable(package="pipeline")
class ReservoirCell(keras.layers.Layer):
    """One time step of a leaky-integrator Echo State Network reservoir.

    With ``u(n)`` the input and ``x(n)`` the state (column vectors, as in the lecture):

        x̃(n) = tanh(W_in [1; u(n)] + W x(n-1))
        x(n)  = (1 - α) x(n-1) + α x̃(n)

    α is ``leak_rate``: α = 1 is the plain ESN ``x(n) = x̃(n)``; a small α makes the state a
    slow moving average, i.e. a longer memory. W, W_in and the bias column of W_in are
    random, fixed and non-trainable (see ``reservoir_matrices``); they are Keras weights
    so a saved model reloads them bit for bit. Keras works with row vectors, so the
    weights are stored transposed: ``input_kernel = W_inᵀ`` (without the bias column),
    ``bias`` (the bias column) and ``recurrent_kernel = Wᵀ``.

    Args:
        units: Positive integer, size of the reservoir (dimension of ``x``).
        leak_rate: α in (0, 1].
        spectral_radius: Largest absolute eigenvalue of W, > 0 (below ~1 for the echo
            state property with small inputs; 1.25 is usual for Mackey-Glass).
        input_scaling: Magnitude of the non-zero input weights, > 0.
        connectivity: Fraction of non-zero entries of W, in (0, 1].
        input_connectivity: Fraction of non-zero input weights, in (0, 1].
        bias_scaling: Magnitude of the bias weights (the column of W_in multiplying the
            constant 1), >= 0; 0 removes the bias.
        seed: Non-negative integer; the matrices depend on it and on the input size only.
            Give stacked or parallel reservoirs different seeds.
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, features)``, one time step.
        states: ``[x(n-1)]``, a list with one ``(batch, units)`` tensor.

    Returns:
        ``(x(n), [x(n)])``, each ``(batch, units)``.

    Example:
        >>> cell = ReservoirCell(100, leak_rate=0.3, spectral_radius=1.25, seed=0)
        >>> layer = keras.layers.RNN(cell, return_sequences=True)  # or use `Reservoir`
    """

    def __init__(self, units: int, leak_rate: float = 1.0, spectral_radius: float = 0.9,
                 input_scaling: float = 1.0, connectivity: float = 0.1, input_connectivity: float = 1.0,
                 bias_scaling: float = 1.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_count("units", units, minimum=1)
        self.leak_rate = _check_number("leak_rate", leak_rate, low=0.0, high=1.0)
        self.spectral_radius = _check_number("spectral_radius", spectral_radius, low=0.0)
        self.input_scaling = _check_number("input_scaling", input_scaling, low=0.0)
        self.connectivity = _check_number("connectivity", connectivity, low=0.0, high=1.0)
        self.input_connectivity = _check_number("input_connectivity", input_connectivity, low=0.0, high=1.0)
        self.bias_scaling = _check_number("bias_scaling", bias_scaling, low=0.0, low_open=False)
        self.seed = _check_count("seed", seed, minimum=0)
        self.state_size = self.units
        self.output_size = self.units
        # Set by `Reservoir` while it runs: inputs are then W_in [1; u] already.
        self._drive_precomputed = False

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"ReservoirCell needs a known feature dimension. Received: input_shape={input_shape}")
        matrices = reservoir_matrices(
            self.units, int(input_dim), spectral_radius=self.spectral_radius, input_scaling=self.input_scaling,
            connectivity=self.connectivity, input_connectivity=self.input_connectivity,
            bias_scaling=self.bias_scaling, seed=self.seed)
        for name, matrix in matrices.items():
            weight = self.add_weight(shape=matrix.shape, initializer="zeros", trainable=False, name=name)
            weight.assign(matrix.astype(weight.dtype))
            setattr(self, name, weight)
        self.built = True

    def project_inputs(self, inputs):
        """``W_in [1; u]`` for inputs of shape ``(..., features)``: returns ``(..., units)``."""
        return keras.ops.matmul(inputs, self.input_kernel) + self.bias

    def call(self, inputs, states, training=None):
        previous = states[0] if isinstance(states, (list, tuple)) else states
        drive = inputs if self._drive_precomputed else self.project_inputs(inputs)
        candidate = keras.ops.tanh(drive + keras.ops.matmul(previous, self.recurrent_kernel))
        # (1 - α) x + α x̃ (not x + α (x̃ - x)) so that α = 1 gives x̃ exactly.
        state = (1.0 - self.leak_rate) * previous + self.leak_rate * candidate
        return state, [state]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "leak_rate": self.leak_rate,
                "spectral_radius": self.spectral_radius, "input_scaling": self.input_scaling,
                "connectivity": self.connectivity, "input_connectivity": self.input_connectivity,
                "bias_scaling": self.bias_scaling, "seed": self.seed}


_CELL_ARGUMENTS = ("units", "leak_rate", "spectral_radius", "input_scaling", "connectivity",
                   "input_connectivity", "bias_scaling", "seed")


@keras.saving.register_keras_serializable(package="pipeline")
class Reservoir(PrecomputedDrive, CellArgumentsConfig, keras.layers.RNN):
    """Echo State Network reservoir over a sequence: ``keras.layers.RNN`` with a ``ReservoirCell``.

    Masking, ``return_sequences``, ``return_state``, ``stateful``, ``go_backwards`` and
    ``Bidirectional`` come from ``keras.layers.RNN``. For speed the input term
    ``W_in [1; u(n)]`` is computed for all time steps in one matrix product before the
    recurrence, which then only does ``tanh(drive + W x)`` and the leak per step. On CPU
    run it compiled (``model.predict_on_batch`` with ``model.jit_compile = True``, or
    inside ``fit``/``predict``): eager calls step through the loop in Python.

    Args:
        units, leak_rate, spectral_radius, input_scaling, connectivity,
        input_connectivity, bias_scaling, seed: as in ``ReservoirCell``.
        return_sequences: Return every state ``(batch, timesteps, units)`` instead of the
            last one ``(batch, units)``.
        return_state: Also return the last state.
        go_backwards: Run over the sequence in reverse.
        stateful: Keep the last state of each batch as the next batch's initial state.
        unroll: Unroll the loop (short fixed-length sequences only).
        **kwargs: Base layer arguments (``name``, ``dtype``, ``zero_output_for_mask``, ...).

    Call arguments:
        sequences: ``(batch, timesteps, features)``.
        initial_state: Optional ``[(batch, units)]``; zeros by default.
        mask: Optional ``(batch, timesteps)`` boolean; masked steps keep the state.

    Returns:
        ``(batch, units)`` or ``(batch, timesteps, units)``, plus the last state
        ``(batch, units)`` when ``return_state``.

    Example:
        >>> inputs = keras.Input((None, 1))
        >>> states = Reservoir(300, leak_rate=0.3, spectral_radius=1.25, seed=0,
        ...                    return_sequences=True)(inputs)
    """

    cell_arguments = _CELL_ARGUMENTS

    def __init__(self, units: int, leak_rate: float = 1.0, spectral_radius: float = 0.9,
                 input_scaling: float = 1.0, connectivity: float = 0.1, input_connectivity: float = 1.0,
                 bias_scaling: float = 1.0, seed: int = 0, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, **kwargs):
        cell = ReservoirCell(units, leak_rate=leak_rate, spectral_radius=spectral_radius,
                             input_scaling=input_scaling, connectivity=connectivity,
                             input_connectivity=input_connectivity, bias_scaling=bias_scaling, seed=seed,
                             dtype=kwargs.get("dtype"), name="reservoir_cell")
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)


class RidgeAccumulator:
    """Ridge regression readout fitted from batches in constant memory (float64).

    For a design ``X`` with columns ``[1; s(n)]`` (``s`` = ``features``, e.g. ``[u(n); x(n)]``)
    and targets ``Y``, the readout is ``W_out = Y Xᵀ (X Xᵀ + β D)⁻¹`` with ``β = ridge`` and
    ``D = diag(0, 1, ..., 1)``: the bias is not regularised, because shrinking it towards 0
    would penalise the mean of the targets (a matter of units, not of over-fitting);
    ReservoirPy's ``Ridge`` does the same. Eliminating the bias gives the equivalent
    centred problem ``(C + βI) W = C_sy``, ``b = ȳ - s̄ W`` with ``C`` the weighted scatter of
    ``s`` about its mean; we accumulate means and scatters per batch and merge them (Chan
    et al.'s pairwise update), which avoids the cancellation of raw sums, and solve the
    symmetric positive-definite system by Cholesky (``assume_a="pos"``), never an inverse.
    With ``fit_bias=False`` ``X = s`` and the accumulators are the raw ``X Xᵀ`` and ``X Yᵀ``.

    For sequences, drop the first ``washout`` states of every sequence before ``update``
    (they still depend on the arbitrary zero initial state), or give them weight 0.

    Args:
        ridge: β >= 0 (0 is plain least squares and needs a well-conditioned design).
        fit_bias: Learn an unregularised bias.

    Example:
        >>> accumulator = RidgeAccumulator(ridge=1e-6)
        >>> for states, targets in batches: accumulator.update(states, targets)
        >>> weights, bias = accumulator.solve()      # predict: states @ weights + bias
    """

    def __init__(self, ridge: float, fit_bias: bool = True):
        self.ridge = _check_number("ridge", ridge, low=0.0, low_open=False)
        self.fit_bias = bool(fit_bias)
        self.total_weight = 0.0
        self._mean_features: np.ndarray | None = None
        self._mean_targets: np.ndarray | None = None
        self._scatter: np.ndarray | None = None      # (features, features)
        self._cross: np.ndarray | None = None        # (features, outputs)

    def update(self, states, targets, sample_weight=None) -> None:
        """Add samples: ``states (n, features)``, ``targets (n, outputs)`` or ``(n,)``, weights ``(n,)``."""
        states = np.asarray(states, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        targets = targets[:, None] if targets.ndim == 1 else targets
        if states.ndim != 2 or targets.ndim != 2 or len(states) != len(targets):
            raise ValueError(f"update needs states (n, features) and targets (n, outputs) with the same n. "
                             f"Received: states.shape={states.shape}, targets.shape={targets.shape}")
        if self._scatter is not None and (states.shape[1], targets.shape[1]) != self._cross.shape:
            raise ValueError(f"Feature/output sizes changed between batches: {self._cross.shape} then "
                             f"{(states.shape[1], targets.shape[1])}")
        weights = np.ones(len(states)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        if weights.shape != (len(states),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"sample_weight must be finite, >= 0 and of shape ({len(states)},). "
                             f"Received shape {weights.shape}")
        if not (np.all(np.isfinite(states)) and np.all(np.isfinite(targets))):
            raise ValueError("states and targets must be finite (the reservoir or the data produced NaN/inf)")
        batch_weight = float(weights.sum())
        if batch_weight == 0.0:
            return
        if self._scatter is None:
            self._mean_features = np.zeros(states.shape[1])
            self._mean_targets = np.zeros(targets.shape[1])
            self._scatter = np.zeros((states.shape[1], states.shape[1]))
            self._cross = np.zeros((states.shape[1], targets.shape[1]))
        if not self.fit_bias:
            weighted = states * weights[:, None]
            self._scatter += weighted.T @ states
            self._cross += weighted.T @ targets
            self.total_weight += batch_weight
            return
        batch_mean_features = weights @ states / batch_weight
        batch_mean_targets = weights @ targets / batch_weight
        centred = states - batch_mean_features
        weighted = centred * weights[:, None]
        feature_shift = batch_mean_features - self._mean_features
        target_shift = batch_mean_targets - self._mean_targets
        total = self.total_weight + batch_weight
        merge = self.total_weight * batch_weight / total
        self._scatter += weighted.T @ centred + merge * np.outer(feature_shift, feature_shift)
        self._cross += weighted.T @ (targets - batch_mean_targets) + merge * np.outer(feature_shift, target_shift)
        self._mean_features += feature_shift * (batch_weight / total)
        self._mean_targets += target_shift * (batch_weight / total)
        self.total_weight = total

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(weights (features, outputs), bias (outputs,))``; predict with ``s @ weights + bias``."""
        if self._scatter is None:
            raise ValueError("RidgeAccumulator.solve() called before any update() with non-zero weight")
        system = self._scatter + self.ridge * np.eye(len(self._scatter))
        try:
            weights = scipy.linalg.solve(system, self._cross, assume_a="pos")
        except np.linalg.LinAlgError as error:
            raise PipelineError(f"ridge regression is singular with ridge={self.ridge!r} "
                                f"({error}); set a positive `ridge` (e.g. 1e-6)") from error
        if not self.fit_bias:
            return weights, np.zeros(weights.shape[1])
        return weights, self._mean_targets - self._mean_features @ weights


def fit_ridge_readout(model: keras.Model, readout_layer: keras.layers.Dense, batches: Iterable,
                      ridge: float, *, washout: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit the ``Dense`` readout of ``model`` by ridge regression and set its kernel and bias.

    A feature model from ``model.inputs`` to the readout's input is run (compiled, via
    ``predict_on_batch``) over ``batches``; the Dense pre-activation is fitted to the targets
    (with a softmax readout and one-hot targets the arg-max is the class; the probabilities
    are not calibrated). ``readout_layer.use_bias`` decides ``fit_bias``.

    Args:
        model: A built functional or Sequential model containing ``readout_layer``.
        readout_layer: The ``keras.layers.Dense`` layer to fit.
        batches: Iterable of ``(inputs, targets)`` or ``(inputs, targets, sample_weights)``;
            targets ``(batch, outputs)`` (e.g. one-hot), or ``(batch, timesteps, outputs)``
            when the readout acts on every time step (then weights are ``(batch, timesteps)``).
        ridge: β >= 0, see ``RidgeAccumulator``.
        washout: For per-time-step readouts, drop the first ``washout`` states of each
            sequence (transient from the zero initial state).

    Returns:
        ``(kernel (features, outputs), bias (outputs,))`` in float64, as set on the layer.
    """
    if not isinstance(readout_layer, keras.layers.Dense):
        raise TypeError(f"readout_layer must be a keras.layers.Dense. Received: {type(readout_layer).__name__}")
    washout = _check_count("washout", washout, minimum=0)
    feature_model = keras.Model(model.inputs, readout_layer.input)
    accumulator = RidgeAccumulator(ridge, fit_bias=readout_layer.use_bias)
    for batch in batches:
        if len(batch) not in (2, 3):
            raise ValueError(f"Each batch must be (inputs, targets) or (inputs, targets, sample_weights); "
                             f"received a tuple of length {len(batch)}")
        inputs, targets = batch[0], np.asarray(batch[1], dtype=np.float64)
        weights = None if len(batch) == 2 else np.asarray(batch[2], dtype=np.float64)
        features = np.asarray(feature_model.predict_on_batch(inputs), dtype=np.float64)
        if features.ndim == 3:
            features, targets = features[:, washout:], targets[:, washout:]
            weights = None if weights is None else weights[:, washout:]
        elif washout:
            raise ValueError(f"washout={washout} needs per-time-step features; the readout sees {features.shape}")
        accumulator.update(features.reshape(-1, features.shape[-1]), targets.reshape(-1, targets.shape[-1]),
                           None if weights is None else weights.reshape(-1))
    kernel, bias = accumulator.solve()
    values = [kernel] + ([bias] if readout_layer.use_bias else [])
    readout_layer.set_weights([value.astype(readout_layer.kernel.dtype) for value in values])
    logger.info("ridge readout fitted on %g weighted samples (ridge=%g)", accumulator.total_weight, ridge)
    return kernel, bias
