"""Output-to-hidden recurrence (Jordan 1986): the state is fed by the previous *output*, not the previous hidden state.

The update, in the Keras weight layout (row vectors, ``x @ W``)::

    s_t = state_decay * s_{t-1} + y_{t-1}          (Jordan's "state units"; s_0 = y_{-1} = 0)
    h_t = activation(x_t @ kernel + s_t @ recurrent_kernel + bias)
    o_t = h_t @ output_kernel + output_bias
    y_t = output_activation(o_t)

With ``state_decay = 0`` (the default) ``s_t = y_{t-1}``: the lecture's form
``h_t = φ(W x_t + R y_{t-1} + b)``. With ``0 < state_decay < 1`` the state units also remember
older outputs, exponentially fading, as in Jordan's paper.

Two modes (lecture 003 §3.1):

* **Teacher forcing** (training): ``y_{t-1}`` is the *true* previous output, given as ``targets``.
  Then no step depends on another step's computation: ``s`` is a fixed linear function of the
  targets (a lower-triangular matrix of powers of ``state_decay`` times them) and every
  ``h_t``, ``o_t`` is computed for all t at once. No loop, no backpropagation through time.
* **Free running** (generation): ``y_{t-1}`` is the layer's own previous output ``y_t``, or with
  ``feedback = "argmax"`` the one-hot vector of its most probable class, fed back through a loop
  over ``keras.layers.RNN`` (masking, ``return_state``, ``stateful``, ``unroll`` for free).

``JordanHidden`` is the same recurrence for a language model, where the previous output *is* the
current input token: see its docstring; it is the registry kind ``jordan``.
"""

from __future__ import annotations

import keras
from keras import ops

from pipeline.layers.cell_layer import CellArgumentsConfig
from pipeline.layers.checks import check_positive_integer
from pipeline.layers.elman import ACTIVATIONS, _check_activation

OUTPUT_ACTIVATIONS = ("linear", "softmax", "sigmoid", "tanh")
"""What ``y_t = output_activation(o_t)`` may be: a regression output, class probabilities, ..."""
FEEDBACKS = ("output", "argmax")
"""What free running feeds back: ``y_t`` itself, or ``one_hot(argmax(o_t))`` (the predicted class)."""

_CELL_ARGUMENTS = (
    "units", "output_units", "activation", "output_activation", "feedback", "state_decay", "use_bias",
    "kernel_initializer", "recurrent_initializer", "output_initializer", "bias_initializer",
)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"Argument `{name}` must be one of {', '.join(choices)}; received {name}={value!r}.")
    return value


def _check_decay(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"Argument `state_decay` must be a float in [0, 1); received state_decay={value!r}.")
    return float(value)


def decayed_sum(sequence, state_decay):
    """``s_t = Σ_{k <= t} state_decay^(t-k) · sequence_k`` for all t at once, ``(batch, timesteps, features)``.

    The solution of ``s_t = state_decay · s_{t-1} + sequence_t`` (s_{-1} = 0) as one product with
    the ``(timesteps, timesteps)`` lower-triangular matrix ``D[t, k] = state_decay^(t-k)``:
    parallel over time. ``state_decay = 0`` returns ``sequence`` itself.
    """
    if state_decay == 0.0:
        return sequence
    steps = ops.arange(ops.shape(sequence)[1])
    distance = ops.cast(ops.expand_dims(steps, 1) - ops.expand_dims(steps, 0), sequence.dtype)
    decay = ops.where(distance >= 0, ops.power(ops.cast(state_decay, sequence.dtype), ops.maximum(distance, 0)), 0)
    return ops.einsum("tk,bkf->btf", decay, sequence)


@keras.saving.register_keras_serializable(package="pipeline")
class JordanCell(keras.layers.Layer):
    """One free-running step of a Jordan network; its state is ``s_{t+1} = state_decay · s_t + y_t``.

    ``h_t = φ(x_t @ kernel + s_t @ recurrent_kernel + bias)``, ``y_t = g(h_t @ output_kernel + output_bias)``.

    Args:
        units: Positive integer, size of the hidden layer ``h_t``.
        output_units: Positive integer, size of the output ``y_t`` and so of the state ``s_t``.
        activation: ``φ``; one of ``"tanh"`` (default), ``"softsign"``, ``"relu"``, ``"sigmoid"``.
        output_activation: ``g``; one of ``"linear"`` (default), ``"softmax"``, ``"sigmoid"``, ``"tanh"``.
        feedback: What the next step receives as ``y_{t-1}``: ``"output"`` (``y_t``, default) or
            ``"argmax"`` (``one_hot(argmax(o_t))``, for one-hot class targets; not differentiable).
        state_decay: Float in [0, 1); 0 (default) makes ``s_t = y_{t-1}``.
        use_bias: Whether ``bias`` and ``output_bias`` are added. Default ``True``.
        kernel_initializer: ``kernel`` ``(features, units)``. Default ``"glorot_uniform"``.
        recurrent_initializer: ``recurrent_kernel`` ``(output_units, units)``. Default ``"glorot_uniform"``
            (it is not square, so orthogonal buys nothing).
        output_initializer: ``output_kernel`` ``(units, output_units)``. Default ``"glorot_uniform"``.
        bias_initializer: ``bias`` ``(units,)`` and ``output_bias`` ``(output_units,)``. Default ``"zeros"``.

    Call arguments:
        inputs: ``(batch, features)``, ``x_t``.
        states: ``[s_t]``, ``(batch, output_units)``.

    Returns:
        ``(y_t, [s_{t+1}])``: ``(batch, output_units)`` and the new state list.
    """

    def __init__(self, units, output_units, activation="tanh", output_activation="linear", feedback="output",
                 state_decay=0.0, use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="glorot_uniform", output_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        units = check_positive_integer("units", units)
        output_units = check_positive_integer("output_units", output_units)
        activation = _check_activation(activation)
        output_activation = _check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
        feedback = _check_choice("feedback", feedback, FEEDBACKS)
        state_decay = _check_decay(state_decay)
        super().__init__(**kwargs)
        self.units, self.output_units = units, output_units
        self.activation, self.output_activation = activation, output_activation
        self.feedback, self.state_decay, self.use_bias = feedback, state_decay, bool(use_bias)
        self.activation_function = keras.activations.get(activation)
        self.output_function = keras.activations.get(output_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.output_initializer = keras.initializers.get(output_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.state_size = output_units
        self.output_size = output_units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel",
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(shape=(self.output_units, self.units), name="recurrent_kernel",
                                                initializer=self.recurrent_initializer)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer) \
            if self.use_bias else None
        self.output_kernel = self.add_weight(shape=(self.units, self.output_units), name="output_kernel",
                                             initializer=self.output_initializer)
        self.output_bias = self.add_weight(shape=(self.output_units,), name="output_bias",
                                           initializer=self.bias_initializer) if self.use_bias else None

    def outputs_from_state(self, inputs, state):
        """``(o, y)`` from ``x`` and ``s`` of one step ``(batch, ·)`` or of all steps ``(batch, timesteps, ·)``."""
        preactivation = ops.matmul(inputs, self.kernel) + ops.matmul(state, self.recurrent_kernel)
        if self.bias is not None:
            preactivation = preactivation + self.bias
        logits = ops.matmul(self.activation_function(preactivation), self.output_kernel)
        if self.output_bias is not None:
            logits = logits + self.output_bias
        return logits, self.output_function(logits)

    def call(self, inputs, states):
        state = states[0] if isinstance(states, (list, tuple)) else states
        logits, outputs = self.outputs_from_state(inputs, state)
        fed_back = outputs
        if self.feedback == "argmax":
            fed_back = ops.one_hot(ops.argmax(logits, axis=-1), self.output_units, dtype=outputs.dtype)
        new_state = self.state_decay * state + fed_back if self.state_decay else fed_back
        return outputs, [new_state] if isinstance(states, (list, tuple)) else new_state

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.output_units), dtype=self.compute_dtype)]

    def get_config(self):
        config = {name: getattr(self, name) for name in (
            "units", "output_units", "activation", "output_activation", "feedback", "state_decay", "use_bias")}
        for name in ("kernel_initializer", "recurrent_initializer", "output_initializer", "bias_initializer"):
            config[name] = keras.initializers.serialize(getattr(self, name))
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="pipeline")
class Jordan(CellArgumentsConfig, keras.layers.RNN):
    """A Jordan network over a sequence: teacher-forced in parallel, or free running over ``keras.layers.RNN``.

    Args:
        units, output_units, activation, output_activation, feedback, state_decay, use_bias,
            *_initializer: as in ``JordanCell``.
        return_sequences: Return every ``y_t`` ``(batch, timesteps, output_units)`` (default ``True``:
            each step's output is what the network is for) instead of the last ``(batch, output_units)``.
        **kwargs: Passed to ``keras.layers.RNN`` (``return_state``, ``stateful``, ``unroll``, ``name``, ...).

    Call arguments:
        sequences: ``(batch, timesteps, features)``, the inputs ``x_t``.
        targets: Optional ``(batch, timesteps, output_units)``, the true outputs ``y_t``. Given:
            teacher forcing, step t sees ``targets[:, t-1]`` and all steps run at once. Omitted:
            free running, step t sees the layer's own ``y_{t-1}``.
        initial_state: Optional ``[s_0]``, ``(batch, output_units)``.
        mask: Optional boolean ``(batch, timesteps)``. Free running: a ``False`` step keeps the state.
            Teacher forcing: a ``False`` step's target is left out of the state (exact for padding at the end).

    Returns:
        ``(batch, timesteps, output_units)`` (or the last step); with ``return_state`` also the state after it.

    Example:

    ```python
    layer = Jordan(32, output_units=5, output_activation="softmax", feedback="argmax")
    probabilities = layer(inputs, targets=one_hot_targets)  # training: parallel over time
    generated = layer(inputs)                               # generation: own predictions fed back
    ```
    """

    cell_arguments = _CELL_ARGUMENTS

    def __init__(self, units, output_units, activation="tanh", output_activation="linear", feedback="output",
                 state_decay=0.0, use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="glorot_uniform", output_initializer="glorot_uniform",
                 bias_initializer="zeros", return_sequences=True, **kwargs):
        cell = JordanCell(units, output_units, activation=activation, output_activation=output_activation,
                          feedback=feedback, state_decay=state_decay, use_bias=use_bias,
                          kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                          output_initializer=output_initializer, bias_initializer=bias_initializer,
                          dtype=kwargs.get("dtype"), name="jordan_cell")
        super().__init__(cell, return_sequences=return_sequences, **kwargs)

    def call(self, sequences, initial_state=None, mask=None, training=False, targets=None):
        if targets is None:
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        return self.teacher_forced(sequences, targets, initial_state, mask)

    def teacher_forced(self, sequences, targets, initial_state=None, mask=None):
        """All steps at once from the true outputs: ``s = decayed_sum([s_0, y_0, …, y_{T-2}])``, then ``y``."""
        if self.go_backwards or self.stateful:
            raise ValueError("Jordan with targets (teacher forcing) supports neither go_backwards nor stateful; "
                             "call it without targets to run free.")
        targets = ops.cast(targets, sequences.dtype)
        if mask is not None:
            targets = targets * ops.expand_dims(ops.cast(mask, targets.dtype), -1)
        batch_size = ops.shape(sequences)[0]
        first = (ops.zeros((batch_size, self.cell.output_units), sequences.dtype) if initial_state is None
                 else ops.cast(initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state,
                               sequences.dtype))
        previous = ops.concatenate([ops.expand_dims(first, 1), targets[:, :-1]], axis=1)  # y_{t-1}, s_0 first
        state = decayed_sum(previous, self.cell.state_decay)
        _, outputs = self.cell.outputs_from_state(sequences, state)
        if self.return_state:
            last_state = self.cell.state_decay * state[:, -1] + targets[:, -1]
        if not self.return_sequences:
            outputs = outputs[:, -1]
        return [outputs, last_state] if self.return_state else outputs

    def compute_output_spec(self, sequences, initial_state=None, mask=None, training=False, targets=None):
        return super().compute_output_spec(sequences, initial_state=initial_state)

    @property
    def units(self):
        return self.cell.units

    @property
    def output_units(self):
        return self.cell.output_units


@keras.saving.register_keras_serializable(package="pipeline")
class JordanHidden(keras.layers.Layer):
    """The hidden layer of a Jordan network whose input at step t is its previous output (a language model).

    In a language model the output at step t-1 is the token at step t, so the input the layer gets,
    ``y_t = e(w_t)`` (the embedding of the current token; in training the *true* token, which is
    teacher forcing; in generation the *sampled* one, which is free running), already is
    ``y_{t-1}`` of the Jordan update, and the model's softmax is its output layer ``o_t = V h_t + c``::

        s_t = state_decay * s_{t-1} + y_t,   h_t = activation(s_t @ recurrent_kernel + bias)

    No step waits for another: ``s`` is :func:`decayed_sum` of the inputs and everything runs
    parallel over time, in training and at generation alike (``pipeline generate`` feeds the
    prefix of sampled tokens). With ``state_decay = 0`` the context is the current token alone
    (a neural bigram model); ``0 < state_decay < 1`` adds an exponentially fading memory of the
    earlier ones (Jordan's state units).

    Args:
        units: Positive integer, size of ``h_t``.
        activation: ``φ``; ``"tanh"`` (default), ``"softsign"``, ``"relu"`` or ``"sigmoid"``.
        state_decay: Float in [0, 1); default 0.
        use_bias: Whether to add ``bias``. Default ``True``.
        kernel_initializer: ``recurrent_kernel`` ``(features, units)``. Default ``"glorot_uniform"``.
        return_sequences: Every ``h_t`` ``(batch, timesteps, units)`` (default ``True``), or the last real one.

    Call arguments:
        inputs: ``(batch, timesteps, features)``. mask: optional ``(batch, timesteps)``; masked steps
            add nothing to the state.

    Returns:
        ``(batch, timesteps, units)``, or ``(batch, units)`` at each row's last unmasked step.
    """

    def __init__(self, units, activation="tanh", state_decay=0.0, use_bias=True,
                 kernel_initializer="glorot_uniform", return_sequences=True, **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_integer("units", units)
        self.activation = _check_activation(activation)
        self.state_decay = _check_decay(state_decay)
        self.use_bias, self.return_sequences = bool(use_bias), bool(return_sequences)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.activation_function = keras.activations.get(self.activation)
        self.supports_masking = True

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(shape=(input_shape[-1], self.units), name="recurrent_kernel",
                                                initializer=self.kernel_initializer)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros") if self.use_bias else None

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = inputs * ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        preactivation = ops.matmul(decayed_sum(inputs, self.state_decay), self.recurrent_kernel)
        if self.bias is not None:
            preactivation = preactivation + self.bias
        hidden = self.activation_function(preactivation)
        if self.return_sequences:
            return hidden
        if mask is None:
            return hidden[:, -1]
        last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)
        return ops.take_along_axis(hidden, ops.reshape(last, (-1, 1, 1)), axis=1)[:, 0]

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units) if self.return_sequences else (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "state_decay": self.state_decay, "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "return_sequences": self.return_sequences}


__all__ = ["ACTIVATIONS", "FEEDBACKS", "OUTPUT_ACTIVATIONS", "Jordan", "JordanCell", "JordanHidden", "decayed_sum"]
