"""The Elman simple recurrent network: a cell for one time step and a layer over ``keras.layers.RNN``.

The update (Elman 1990), in the Keras weight layout (row vectors, ``x @ W``)::

    h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)

``kernel`` is ``(features, units)``, ``recurrent_kernel`` is ``(units, units)`` and ``bias`` is
``(units,)``: the same names, shapes and order as ``keras.layers.SimpleRNN``, so
``simple_rnn.set_weights(elman.get_weights())`` copies a model either way.

Speed: the input projection ``x_t @ kernel + bias`` does not depend on the state, so the
``Elman`` layer computes it for all time steps in one matrix product before the loop and the
loop only does ``h_{t-1} @ recurrent_kernel``. ``keras.layers.SimpleRNN`` does both products
inside its loop.

Dropout follows ``keras.layers.SimpleRNNCell``: one input mask ``(batch, features)`` and one
recurrent mask ``(batch, units)`` per call, reused at every time step, drawn only when
``training`` is true. Keras 3.15 does not export its ``DropoutRNNCell`` mix-in (only
``keras.src`` has it), so the ``Elman`` layer draws the masks itself before the loop, with
``keras.random.dropout`` and a ``keras.random.SeedGenerator(seed)`` owned by the cell.
"""

from __future__ import annotations

import keras
from keras import ops

from pipeline.layers.cell_layer import CellArgumentsConfig
from pipeline.layers.checks import check_positive_integer, check_rate, check_seed

ACTIVATIONS = ("tanh", "softsign", "relu", "sigmoid")
"""Activation names the cell accepts (``phi`` in the update equation)."""

# Constructor arguments of the cell that the layer repeats in its own config.
_CELL_ARGUMENTS = (
    "units", "activation", "use_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
    "kernel_constraint", "recurrent_constraint", "bias_constraint",
    "dropout", "recurrent_dropout", "seed",
)


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"Argument `activation` must be one of {', '.join(ACTIVATIONS)}; "
            f"received activation={activation!r}."
        )
    return activation


@keras.saving.register_keras_serializable(package="pipeline")
class ElmanCell(keras.layers.Layer):
    """One time step of an Elman network: ``h_t = phi(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Use it through the ``Elman`` layer, which also precomputes the input projection and draws
    the dropout masks once per sequence. Without dropout the cell also runs inside a plain
    ``keras.layers.RNN`` (for example stacked: ``keras.layers.RNN([ElmanCell(8), ElmanCell(4)])``).

    Args:
        units: Positive integer, size of the hidden state ``h_t``.
        activation: ``phi``; one of ``"tanh"`` (default), ``"softsign"``, ``"relu"``, ``"sigmoid"``.
        use_bias: Whether to add ``bias``. Default ``True``.
        kernel_initializer: Initializer of ``kernel`` ``(features, units)``. Default ``"glorot_uniform"``.
        recurrent_initializer: Initializer of ``recurrent_kernel`` ``(units, units)``.
            Default ``"orthogonal"`` (keeps ``||h @ W_rec|| = ||h||`` at the start).
        bias_initializer: Initializer of ``bias`` ``(units,)``. Default ``"zeros"``.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Optional regularizers.
        kernel_constraint, recurrent_constraint, bias_constraint: Optional constraints.
        dropout: Fraction in [0, 1) of the input features to drop (one mask per sequence).
        recurrent_dropout: Fraction in [0, 1) of the previous state to drop (one mask per sequence).
        seed: Integer seed of the dropout masks, or ``None``.

    Call arguments:
        inputs: ``(batch, features)``, the input at one time step.
        states: ``[h_{t-1}]`` with ``h_{t-1}`` of shape ``(batch, units)`` (or the tensor itself).
        training: Whether dropout applies (only inside the ``Elman`` layer, see above).

    Returns:
        ``(h_t, [h_t])``: the output ``(batch, units)`` and the new state list.

    Example:

    ```python
    cell = ElmanCell(4)
    layer = keras.layers.RNN(cell)
    outputs = layer(np.ones((2, 5, 3), "float32"))  # (2, 4)
    ```
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        units = check_positive_integer("units", units)
        activation = _check_activation(activation)
        dropout = check_rate("dropout", dropout)
        recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        check_seed(seed)
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation
        self.activation_function = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.state_size = units
        self.output_size = units
        # Set by the ``Elman`` layer for the duration of one call (see ``Elman.call``).
        self._inputs_are_projected = False
        self._recurrent_dropout_mask = None

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), name="kernel",
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), name="recurrent_kernel",
            initializer=self.recurrent_initializer, regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,), name="bias",
                initializer=self.bias_initializer, regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def project_inputs(self, inputs, input_dropout_mask=None):
        """``inputs @ kernel + bias`` for ``(batch, features)`` or ``(batch, timesteps, features)``.

        ``input_dropout_mask`` ``(batch, features)`` multiplies every time step's input.
        """
        if input_dropout_mask is not None:
            if len(inputs.shape) == 3:
                input_dropout_mask = ops.expand_dims(input_dropout_mask, 1)
            inputs = inputs * input_dropout_mask
        projected = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            projected = projected + self.bias
        return projected

    def dropout_masks(self, batch_size, features, training=False):
        """Draw ``(input_mask, recurrent_mask)`` for one call; ``None`` where not needed.

        Masks hold 0 or ``1 / (1 - rate)`` (inverted dropout, as ``keras.layers.Dropout``).
        """
        input_mask = recurrent_mask = None
        if training and self.dropout > 0:
            ones = ops.ones((batch_size, features), dtype=self.compute_dtype)
            input_mask = keras.random.dropout(ones, rate=self.dropout, seed=self.seed_generator)
        if training and self.recurrent_dropout > 0:
            ones = ops.ones((batch_size, self.units), dtype=self.compute_dtype)
            recurrent_mask = keras.random.dropout(
                ones, rate=self.recurrent_dropout, seed=self.seed_generator
            )
        return input_mask, recurrent_mask

    def call(self, inputs, states, training=False):
        previous_state = states[0] if isinstance(states, (list, tuple)) else states
        if self._inputs_are_projected:
            projected = inputs  # the Elman layer already computed inputs @ kernel + bias
            recurrent_mask = self._recurrent_dropout_mask
        else:
            if training and (self.dropout > 0 or self.recurrent_dropout > 0):
                raise ValueError(
                    "ElmanCell with dropout or recurrent_dropout must run inside the Elman layer, "
                    "which draws one dropout mask per sequence; use Elman(...) or set the rates to 0."
                )
            projected = self.project_inputs(inputs)
            recurrent_mask = None
        if recurrent_mask is not None:
            previous_state = previous_state * recurrent_mask
        output = self.activation_function(
            projected + ops.matmul(previous_state, self.recurrent_kernel)
        )
        new_state = [output] if isinstance(states, (list, tuple)) else output
        return output, new_state

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="pipeline")
class Elman(CellArgumentsConfig, keras.layers.RNN):
    """Elman simple recurrent network over a sequence: ``h_t = phi(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    A drop-in for ``keras.layers.SimpleRNN`` (same weights, same numbers) with the activation
    restricted to ``tanh``, ``softsign``, ``relu`` or ``sigmoid``. ``keras.layers.RNN`` supplies
    masking, ``go_backwards``, ``return_sequences``, ``return_state``, ``stateful``, ``unroll``,
    stacking and ``keras.layers.Bidirectional``.

    Args:
        units, activation, use_bias, *_initializer, *_regularizer, *_constraint, dropout,
            recurrent_dropout, seed: as in ``ElmanCell``.
        return_sequences: Return ``(batch, timesteps, units)`` instead of the last output ``(batch, units)``.
        return_state: Also return the last state ``(batch, units)``.
        go_backwards: Read the sequence from the end; the returned sequence is reversed too.
        stateful: Carry the last state of batch row ``i`` into the next call (fixed batch size).
        unroll: Unroll the loop in the graph (short, fixed-length sequences only).
        **kwargs: Passed to ``keras.layers.RNN`` (``name``, ``dtype``, ``zero_output_for_mask``, ...).

    Call arguments:
        sequences: ``(batch, timesteps, features)``.
        initial_state: Optional ``[h_0]`` with ``h_0`` of shape ``(batch, units)``.
        mask: Optional boolean ``(batch, timesteps)``; a ``False`` step keeps the previous state.
        training: Whether dropout applies.

    Returns:
        ``(batch, units)``, or ``(batch, timesteps, units)`` with ``return_sequences``; with
        ``return_state`` a list ``[output, h_last]``.

    Example:

    ```python
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(1000, 32, mask_zero=True)(inputs)
    hidden = Elman(64, dropout=0.1, seed=0)(embedded)  # (batch, 64)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    ```
    """

    cell_arguments = _CELL_ARGUMENTS

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        cell = ElmanCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="elman_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        # One matrix product for every step's x_t @ kernel + bias; the loop keeps only h @ W_rec.
        input_mask, recurrent_mask = self.cell.dropout_masks(
            ops.shape(sequences)[0], sequences.shape[-1], training=training
        )
        projected = self.cell.project_inputs(sequences, input_mask)
        self.cell._inputs_are_projected = True
        self.cell._recurrent_dropout_mask = recurrent_mask
        try:
            return super().call(projected, initial_state=initial_state, mask=mask, training=training)
        finally:
            self.cell._inputs_are_projected = False
            self.cell._recurrent_dropout_mask = None

    @property
    def units(self):
        return self.cell.units

    @property
    def activation(self):
        return self.cell.activation

    @property
    def use_bias(self):
        return self.cell.use_bias

    @property
    def dropout(self):
        return self.cell.dropout

    @property
    def recurrent_dropout(self):
        return self.cell.recurrent_dropout

    @property
    def seed(self):
        return self.cell.seed

