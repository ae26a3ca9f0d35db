"""An LSTM with DropConnect on its recurrent weights: AWD-LSTM's weight drop (Merity et al. 2018).

One Bernoulli mask over the recurrent kernel ``U`` per forward call, the same at every time
step and for every sequence of the batch: the recurrent connections are regularised without the
per-step noise that would disturb the LSTM's memory. Equations, gate order and weight shapes are
``keras.layers.LSTM``'s, so trained weights move between the two.
"""

from __future__ import annotations

import keras
from keras import ops

from pipeline.layers.cell_layer import CellArgumentsConfig
from pipeline.layers.checks import check_positive_integer, check_rate, check_seed
from pipeline.layers.regularization import dropout_mask

# Constructor arguments of the cell that the layer repeats in its own config.
_CELL_ARGUMENTS = (
    "units", "recurrent_dropconnect", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "unit_forget_bias", "seed",
)



@keras.saving.register_keras_serializable(package="pipeline")
class WeightDropLSTMCell(keras.layers.Layer):
    """One LSTM step, ``keras.layers.LSTMCell``'s equations, with DropConnect on the recurrent kernel.

    In the Keras layout (row vectors, gates in the order i, f, c, o along the last axis)::

        z   = x_t @ kernel + h_{t-1} @ (recurrent_kernel * M) + bias
        i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_c), sigmoid(z_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    ``M`` ``(units, 4 * units)`` holds 0 (probability ``recurrent_dropconnect``) or
    ``1 / (1 - recurrent_dropconnect)``; it is drawn once per forward call by ``WeightDropLSTM``
    and is the same at every time step and for every batch row (AWD-LSTM's ``WeightDrop``).
    Without it (inference, rate 0) ``M`` is all ones and the cell equals ``keras.layers.LSTMCell``.

    Use it through ``WeightDropLSTM``. With ``recurrent_dropconnect=0`` (or at inference) it also
    runs inside a plain ``keras.layers.RNN``; in training with a rate > 0 it refuses, since a cell
    alone would have to draw a new mask at every step.

    Args:
        units: Positive integer, size of ``h_t`` and ``c_t``.
        recurrent_dropconnect: Fraction in [0, 1) of the recurrent kernel's entries to drop.
        kernel_initializer: Initializer of ``kernel`` ``(features, 4 * units)``. Default ``"glorot_uniform"``.
        recurrent_initializer: Initializer of ``recurrent_kernel`` ``(units, 4 * units)``. Default ``"orthogonal"``.
        bias_initializer: Initializer of ``bias`` ``(4 * units,)``. Default ``"zeros"``.
        unit_forget_bias: Start the forget gate's bias at 1 (Jozefowicz et al. 2015). Default ``True``.
        seed: Integer seed of the DropConnect masks, or ``None``.
        **kwargs: Passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: ``(batch, features)`` (or ``(batch, 4 * units)`` already projected, inside the layer).
        states: ``[h_{t-1}, c_{t-1}]``, each ``(batch, units)``.
        training: Whether DropConnect applies.

    Returns:
        ``(h_t, [h_t, c_t])``.

    Example:

    ```python
    outputs = keras.layers.RNN(WeightDropLSTMCell(8))(np.ones((2, 5, 3), "float32"))  # (2, 8)
    ```
    """

    def __init__(self, units, recurrent_dropconnect=0.0, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, seed=None, **kwargs):
        units = check_positive_integer("units", units)
        recurrent_dropconnect = check_rate("recurrent_dropconnect", recurrent_dropconnect)
        seed = check_seed(seed)
        super().__init__(**kwargs)
        self.units = units
        self.recurrent_dropconnect = recurrent_dropconnect
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = [units, units]
        self.output_size = units
        # Set by ``WeightDropLSTM.call`` for the duration of one call.
        self._inputs_are_projected = False
        self._call_recurrent_kernel = None

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 4 * self.units), name="kernel",
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(shape=(self.units, 4 * self.units),
                                                name="recurrent_kernel",
                                                initializer=self.recurrent_initializer)
        bias_initializer = self.bias_initializer
        if self.unit_forget_bias:
            def bias_initializer(shape, dtype=None):  # [b_i, 1, b_c, b_o], as keras.layers.LSTMCell
                return ops.concatenate([
                    self.bias_initializer((self.units,), dtype=dtype),
                    ops.ones((self.units,), dtype=dtype),
                    self.bias_initializer((2 * self.units,), dtype=dtype),
                ])
        self.bias = self.add_weight(shape=(4 * self.units,), name="bias",
                                    initializer=bias_initializer)

    def project_inputs(self, inputs):
        """``inputs @ kernel + bias`` for ``(batch, features)`` or ``(batch, timesteps, features)``."""
        return ops.matmul(inputs, self.kernel) + self.bias

    def sample_recurrent_kernel_mask(self):
        """Draw one DropConnect mask ``(units, 4 * units)`` of 0 and ``1 / (1 - rate)`` (all ones at rate 0)."""
        shape = (self.units, 4 * self.units)
        if self.recurrent_dropconnect == 0:
            return ops.ones(shape, dtype=self.compute_dtype)
        return dropout_mask(shape, self.recurrent_dropconnect, self.seed_generator, self.compute_dtype)

    def call(self, inputs, states, training=False):
        previous_output, previous_carry = states
        if self._inputs_are_projected:
            projected = inputs  # WeightDropLSTM already computed x @ kernel + bias
            recurrent_kernel = self._call_recurrent_kernel
        else:
            if training and self.recurrent_dropconnect > 0:
                raise ValueError(
                    "WeightDropLSTMCell with recurrent_dropconnect > 0 must run inside the "
                    "WeightDropLSTM layer, which draws one mask per sequence; use WeightDropLSTM(...) "
                    "or set recurrent_dropconnect=0."
                )
            projected = self.project_inputs(inputs)
            recurrent_kernel = self.recurrent_kernel
        z = projected + ops.matmul(previous_output, recurrent_kernel)
        z_input, z_forget, z_candidate, z_output = ops.split(z, 4, axis=-1)
        carry = (ops.sigmoid(z_forget) * previous_carry
                 + ops.sigmoid(z_input) * ops.tanh(z_candidate))
        output = ops.sigmoid(z_output) * ops.tanh(carry)
        return output, [output, carry]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype) for _ in range(2)]

    def get_config(self):
        config = {
            "units": self.units,
            "recurrent_dropconnect": self.recurrent_dropconnect,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="pipeline")
class WeightDropLSTM(CellArgumentsConfig, keras.layers.RNN):
    """An LSTM with DropConnect on its recurrent kernel, one mask per forward call (AWD-LSTM's ``wdrop``).

    ``h_t`` follows ``WeightDropLSTMCell``'s equations with ``recurrent_kernel * M``; ``M``
    ``(units, 4 * units)`` is drawn once per call, before the time loop, and reused at every step
    and batch row. Dropping recurrent *weights* rather than the state regularises the recurrence
    without touching the cell, so the loop stays a plain LSTM. At inference ``M`` is all ones and the
    layer equals ``keras.layers.LSTM`` (same weight names, shapes and order, so ``set_weights``
    copies either way). ``keras.layers.RNN`` supplies masking, ``go_backwards``, ``stateful``,
    ``return_state`` and ``keras.layers.Bidirectional``.

    Args:
        units, recurrent_dropconnect, kernel_initializer, recurrent_initializer, bias_initializer,
            unit_forget_bias, seed: as in ``WeightDropLSTMCell``.
        return_sequences: Return ``(batch, timesteps, units)`` instead of the last output ``(batch, units)``.
        return_state: Also return the last ``h`` and ``c``, each ``(batch, units)``.
        go_backwards: Read the sequence from the end; the returned sequence is reversed too.
        stateful: Carry the last state of batch row ``i`` into the next call (fixed batch size).
        unroll: Unroll the loop in the graph (short, fixed-length sequences only).
        **kwargs: Passed to ``keras.layers.RNN`` (``name``, ``dtype``, ``zero_output_for_mask``, ...).

    Call arguments:
        sequences: ``(batch, timesteps, features)``.
        initial_state: Optional ``[h_0, c_0]``, each ``(batch, units)``.
        mask: Optional boolean ``(batch, timesteps)``; a ``False`` step keeps the previous state.
        training: Whether DropConnect applies.
        recurrent_kernel_mask: Optional ``(units, 4 * units)`` mask to use instead of drawing one,
            in training and at inference alike (for tests and Monte Carlo dropout); see
            ``sample_recurrent_kernel_mask``.

    Returns:
        ``(batch, units)``, or ``(batch, timesteps, units)`` with ``return_sequences``; with
        ``return_state`` a list ``[output, h_last, c_last]``.

    Example:

    ```python
    ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10000, 400, mask_zero=True)(ids)
    hidden = WeightDropLSTM(1150, recurrent_dropconnect=0.5, seed=0, return_sequences=True)(embedded)
    ```
    """

    cell_arguments = _CELL_ARGUMENTS

    def __init__(self, units, recurrent_dropconnect=0.0, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", unit_forget_bias=True,
                 seed=None, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, **kwargs):
        cell = WeightDropLSTMCell(
            units, recurrent_dropconnect=recurrent_dropconnect,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias, seed=seed,
            dtype=kwargs.get("dtype"), trainable=kwargs.get("trainable", True),
            name="weight_drop_lstm_cell",
        )
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def sample_recurrent_kernel_mask(self):
        """Draw one DropConnect mask ``(units, 4 * units)``, as a training call does, from the same generator."""
        return self.cell.sample_recurrent_kernel_mask()

    def call(self, sequences, initial_state=None, mask=None, training=False,
             recurrent_kernel_mask=None):
        if recurrent_kernel_mask is None and training and self.cell.recurrent_dropconnect > 0:
            recurrent_kernel_mask = self.cell.sample_recurrent_kernel_mask()  # once per call
        recurrent_kernel = self.cell.recurrent_kernel
        if recurrent_kernel_mask is not None:
            recurrent_kernel = recurrent_kernel * ops.cast(recurrent_kernel_mask, self.cell.compute_dtype)
        # One matrix product for every step's x_t @ kernel + bias; the loop keeps only h @ U.
        projected = self.cell.project_inputs(sequences)
        self.cell._inputs_are_projected = True
        self.cell._call_recurrent_kernel = recurrent_kernel
        try:
            return super().call(projected, initial_state=initial_state, mask=mask, training=training)
        finally:
            self.cell._inputs_are_projected = False
            self.cell._call_recurrent_kernel = None

    @property
    def units(self):
        return self.cell.units

    @property
    def recurrent_dropconnect(self):
        return self.cell.recurrent_dropconnect

    @property
    def seed(self):
        return self.cell.seed

