r"""Backpropagation through time (BPTT) for an Elman network, in NumPy, written from the equations.

A reference to check Keras autodiff against and to read the algorithm from; not for training.

Weight layout: the Keras convention, row vectors and ``x @ W``. ``kernel`` (``W_in``) is
``(features, units)``, ``recurrent_kernel`` (``W_rec``) is ``(units, units)``, ``bias`` (``b``)
is ``(units,)``, ``output_kernel`` (``V``) is ``(units, outputs)``, ``output_bias`` (``c``) is
``(outputs,)``: exactly ``Elman.get_weights() + Dense.get_weights()``. (Lecture notes write
``W_in x_t`` with column vectors; that is the transpose of the same thing.)

Forward pass, for ``t = 1 .. T`` with ``h_0`` given (zeros by default)::

    a_t = x_t @ W_in + h_{t-1} @ W_rec + b          pre-activation  (batch, units)
    h_t = phi(a_t)                                  hidden state    (batch, units)
    y_t = h_t @ V + c                               output logits   (batch, outputs)

Loss ``L = sum over batch rows and loss steps of l_t``, where the loss steps are every ``t``
(``loss_steps="all"``, sequence output) or ``t = T`` only (``loss_steps="last"``, many-to-one):

* ``"squared_error"``: ``l_t = 1/2 ||y_t - z_t||^2`` (linear output), output error ``e_t = y_t - z_t``;
* ``"softmax_cross_entropy"``: ``l_t = -log softmax(y_t)[z_t]`` with integer class ``z_t``,
  output error ``e_t = softmax(y_t) - onehot(z_t)``.

``e_t = dL/dy_t`` and is zero at steps without a loss term. Backward pass, ``delta_t = dL/da_t``,
from ``t = T`` down to ``1`` with ``delta_{T+1} = 0``::

    dL/dh_t = delta_{t+1} @ W_rec^T + e_t @ V^T    (total derivative through the recurrence)
    delta_t = dL/dh_t * phi'(a_t)                  (elementwise)

which is ``delta_t = (W_rec^T delta_{t+1} + V^T e_t) * phi'(a_t)`` in column-vector notation.
Gradients, summed over time (and batch rows)::

    dL/dW_in  = sum_t x_t^T @ delta_t        dL/dV = sum_t h_t^T @ e_t
    dL/dW_rec = sum_t h_{t-1}^T @ delta_t    dL/dc = sum_t e_t
    dL/db     = sum_t delta_t                dL/dx_t = delta_t @ W_in^T,  dL/dh_0 = delta_1 @ W_rec^T

Truncated BPTT with ``k`` steps: the error of the loss term at step ``s`` flows back through at
most ``k`` time steps, ``t = s, s-1, ..., s-k+1``, and is dropped beyond. With ``k >= T`` nothing
is dropped and the gradients equal the full ones; with ``k < T`` the long-range contributions
to ``W_in``, ``W_rec`` and ``b`` are missing (``V`` and ``c`` only see ``e_t`` and never change).
"""

from __future__ import annotations

import dataclasses

import numpy as np

LOSSES = ("squared_error", "softmax_cross_entropy")
LOSS_STEPS = ("all", "last")


@dataclasses.dataclass(frozen=True)
class ElmanWeights:
    """Weights of an Elman network with a dense output, Keras layout (see the module docstring).

    Also used for gradients, which have the same shapes.
    """

    kernel: np.ndarray  # W_in (features, units)
    recurrent_kernel: np.ndarray  # W_rec (units, units)
    bias: np.ndarray  # b (units,)
    output_kernel: np.ndarray  # V (units, outputs)
    output_bias: np.ndarray  # c (outputs,)

    @classmethod
    def from_list(cls, weights) -> ElmanWeights:
        """From ``elman.get_weights() + dense.get_weights()``, as float64 arrays."""
        return cls(*(np.asarray(weight, dtype=np.float64) for weight in weights))

    def as_list(self) -> list[np.ndarray]:
        return [self.kernel, self.recurrent_kernel, self.bias, self.output_kernel, self.output_bias]


@dataclasses.dataclass(frozen=True)
class ForwardPass:
    """Everything the backward pass needs. Shapes: ``(batch, timesteps, ...)``."""

    pre_activations: np.ndarray  # a_t, (batch, timesteps, units)
    states: np.ndarray  # h_0 .. h_T, (batch, timesteps + 1, units)
    outputs: np.ndarray  # y_t, (batch, timesteps, outputs)


@dataclasses.dataclass(frozen=True)
class BPTTResult:
    """Loss, parameter gradients and the gradients w.r.t. inputs and hidden states."""

    loss: float
    gradients: ElmanWeights
    input_gradients: np.ndarray  # dL/dx_t, (batch, timesteps, features)
    initial_state_gradient: np.ndarray  # dL/dh_0, (batch, units)
    hidden_gradients: np.ndarray  # total dL/dh_t for t = 1..T, (batch, timesteps, units)


def activation_and_derivative(name: str):
    """``(phi, phi')`` as NumPy functions of the pre-activation ``a``: ``tanh``, ``softsign``, ``relu``,
    ``sigmoid``."""
    if name == "tanh":
        return np.tanh, lambda a: 1.0 - np.tanh(a) ** 2
    if name == "softsign":
        return (lambda a: a / (1.0 + np.abs(a))), (lambda a: 1.0 / (1.0 + np.abs(a)) ** 2)
    if name == "relu":
        return (lambda a: np.maximum(a, 0.0)), (lambda a: (a > 0).astype(a.dtype))
    if name == "sigmoid":
        def sigmoid(a):
            return 1.0 / (1.0 + np.exp(-a))
        return sigmoid, lambda a: sigmoid(a) * (1.0 - sigmoid(a))
    raise ValueError(
        f"Argument `activation` must be one of tanh, softsign, relu, sigmoid; received activation={name!r}."
    )


def forward(inputs, weights: ElmanWeights, *, activation="tanh", initial_state=None) -> ForwardPass:
    """Run ``a_t = x_t @ W_in + h_{t-1} @ W_rec + b``, ``h_t = phi(a_t)``, ``y_t = h_t @ V + c``.

    Args:
        inputs: ``(batch, timesteps, features)``.
        weights: ``ElmanWeights``.
        activation: ``phi``.
        initial_state: ``h_0`` ``(batch, units)``; zeros when ``None``.

    Returns:
        ``ForwardPass`` with pre-activations, states ``h_0..h_T`` and outputs.
    """
    phi, _ = activation_and_derivative(activation)
    inputs = np.asarray(inputs, dtype=np.float64)
    batch, timesteps, _ = inputs.shape
    units = weights.recurrent_kernel.shape[0]
    states = np.zeros((batch, timesteps + 1, units))
    if initial_state is not None:
        states[:, 0] = initial_state
    pre_activations = np.zeros((batch, timesteps, units))
    for t in range(timesteps):
        pre_activations[:, t] = inputs[:, t] @ weights.kernel + states[:, t] @ weights.recurrent_kernel + weights.bias
        states[:, t + 1] = phi(pre_activations[:, t])
    outputs = states[:, 1:] @ weights.output_kernel + weights.output_bias
    return ForwardPass(pre_activations, states, outputs)


def output_errors(outputs, targets, *, loss="squared_error", loss_steps="all"):
    """Loss ``L`` and output errors ``e_t = dL/dy_t`` (zero at steps without a loss term).

    Args:
        outputs: ``y_t``, ``(batch, timesteps, outputs)``.
        targets: ``z_t``. Squared error: ``(batch, timesteps, outputs)`` for ``loss_steps="all"``,
            ``(batch, outputs)`` for ``"last"``. Softmax cross entropy: integer classes
            ``(batch, timesteps)`` or ``(batch,)``.
        loss: ``"squared_error"`` or ``"softmax_cross_entropy"``.
        loss_steps: ``"all"`` (sequence output) or ``"last"`` (many-to-one).

    Returns:
        ``(loss, errors)`` with ``errors`` shaped like ``outputs``.
    """
    if loss not in LOSSES:
        raise ValueError(f"Argument `loss` must be one of {LOSSES}; received loss={loss!r}.")
    if loss_steps not in LOSS_STEPS:
        raise ValueError(f"Argument `loss_steps` must be one of {LOSS_STEPS}; received loss_steps={loss_steps!r}.")
    steps = slice(None) if loss_steps == "all" else slice(-1, None)
    scored = outputs[:, steps]
    targets = np.asarray(targets)
    if loss_steps == "last":
        targets = targets[:, None]
    if loss == "squared_error":
        difference = scored - targets
        value = 0.5 * float(np.sum(difference**2))
        scored_errors = difference
    else:
        shifted = scored - scored.max(axis=-1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        one_hot = np.eye(scored.shape[-1])[targets.astype(int)]
        value = -float(np.sum(one_hot * log_probabilities))
        scored_errors = np.exp(log_probabilities) - one_hot
    errors = np.zeros_like(outputs)
    errors[:, steps] = scored_errors
    return value, errors


def bptt(
    inputs,
    targets,
    weights: ElmanWeights,
    *,
    activation="tanh",
    loss="squared_error",
    loss_steps="all",
    truncation: int | None = None,
    initial_state=None,
) -> BPTTResult:
    """Gradients of ``L`` by (optionally truncated) backpropagation through time.

    Args:
        inputs: ``(batch, timesteps, features)``.
        targets: see ``output_errors``.
        weights: ``ElmanWeights`` (Keras layout).
        activation: ``phi``: ``tanh``, ``softsign``, ``relu`` or ``sigmoid``.
        loss: ``"squared_error"`` (linear output) or ``"softmax_cross_entropy"``.
        loss_steps: ``"all"`` or ``"last"``.
        truncation: ``k``: each loss term backpropagates through at most ``k`` steps;
            ``None`` for full BPTT.
        initial_state: ``h_0`` ``(batch, units)``; zeros when ``None``.

    Returns:
        ``BPTTResult``.

    Example:

    ```python
    weights = ElmanWeights.from_list(elman.get_weights() + dense.get_weights())
    result = bptt(inputs, targets, weights, truncation=5)
    result.gradients.recurrent_kernel  # dL/dW_rec, (units, units)
    ```
    """
    if truncation is not None and (isinstance(truncation, bool) or not isinstance(truncation, int) or truncation < 1):
        raise ValueError("Argument `truncation` must be a positive integer or None; "
                         f"received truncation={truncation!r}.")
    _, phi_derivative = activation_and_derivative(activation)
    inputs = np.asarray(inputs, dtype=np.float64)
    passed = forward(inputs, weights, activation=activation, initial_state=initial_state)
    value, errors = output_errors(passed.outputs, targets, loss=loss, loss_steps=loss_steps)
    derivatives = phi_derivative(passed.pre_activations)  # phi'(a_t)
    from_outputs = errors @ weights.output_kernel.T  # e_t @ V^T, (batch, timesteps, units)
    timesteps = inputs.shape[1]
    if truncation is None or truncation >= timesteps:
        deltas, hidden_gradients = _full_deltas(from_outputs, derivatives, weights.recurrent_kernel)
        initial_state_gradient = deltas[:, 0] @ weights.recurrent_kernel.T
        contributions = [(deltas, initial_state_gradient)]
    else:
        contributions, hidden_gradients = _truncated_deltas(
            from_outputs, derivatives, weights.recurrent_kernel, truncation
        )
    # Every gradient is linear in delta, so per-loss-term deltas can simply be summed.
    deltas = sum(delta for delta, _ in contributions)
    initial_state_gradient = sum(gradient for _, gradient in contributions)
    previous_states = passed.states[:, :-1]
    gradients = ElmanWeights(
        kernel=np.einsum("btf,btu->fu", inputs, deltas),
        recurrent_kernel=np.einsum("btv,btu->vu", previous_states, deltas),
        bias=deltas.sum(axis=(0, 1)),
        output_kernel=np.einsum("btu,bto->uo", passed.states[:, 1:], errors),
        output_bias=errors.sum(axis=(0, 1)),
    )
    return BPTTResult(
        loss=value,
        gradients=gradients,
        input_gradients=deltas @ weights.kernel.T,
        initial_state_gradient=initial_state_gradient,
        hidden_gradients=hidden_gradients,
    )


def _full_deltas(from_outputs, derivatives, recurrent_kernel):
    """``delta_t = (delta_{t+1} @ W_rec^T + e_t @ V^T) * phi'(a_t)`` from ``t = T`` down to 1."""
    deltas = np.zeros_like(derivatives)
    hidden_gradients = np.zeros_like(derivatives)
    next_delta = np.zeros_like(derivatives[:, 0])
    for t in reversed(range(derivatives.shape[1])):
        hidden_gradients[:, t] = next_delta @ recurrent_kernel.T + from_outputs[:, t]
        deltas[:, t] = hidden_gradients[:, t] * derivatives[:, t]
        next_delta = deltas[:, t]
    return deltas, hidden_gradients


def _truncated_deltas(from_outputs, derivatives, recurrent_kernel, truncation):
    """Per loss step ``s``: its own ``delta^(s)_t`` for ``t = s .. s-k+1``, zero elsewhere.

    Returns ``[(delta^(s), dL_s/dh_0), ...]`` and the truncated ``dL/dh_t`` (sum over ``s``).
    """
    batch, timesteps, units = derivatives.shape
    contributions = []
    hidden_gradients = np.zeros_like(derivatives)
    for step in range(timesteps):
        if not np.any(from_outputs[:, step]):
            continue  # no loss term at this step
        deltas = np.zeros_like(derivatives)
        hidden_gradient = from_outputs[:, step]
        earliest = max(0, step - truncation + 1)
        for t in range(step, earliest - 1, -1):
            hidden_gradients[:, t] += hidden_gradient
            deltas[:, t] = hidden_gradient * derivatives[:, t]
            hidden_gradient = deltas[:, t] @ recurrent_kernel.T
        initial_state_gradient = hidden_gradient if earliest == 0 else np.zeros((batch, units))
        contributions.append((deltas, initial_state_gradient))
    if not contributions:
        contributions.append((np.zeros_like(derivatives), np.zeros((batch, units))))
    return contributions, hidden_gradients
