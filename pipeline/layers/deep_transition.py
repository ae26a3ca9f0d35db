"""A deep-transition recurrent network (Pascanu et al. 2014): an MLP between ``h_{t-1}`` and ``h_t``.

Stacking recurrent layers deepens a network in the vertical direction (lecture 003 §4, Figure 9).
The other way (Figure 10) deepens each of the three blocks of one step: input-to-hidden,
hidden-to-hidden and hidden-to-output. In the Keras weight layout (row vectors)::

    u_t = φ(… φ(x_t @ input_kernel_1 + input_bias_1) … @ input_kernel_I + input_bias_I)
                                                                 (I = input_depth; u_t = x_t if 0)
    z_1 = φ(u_t @ kernel + h_{t-1} @ recurrent_kernel + bias)
    z_l = φ(z_{l-1} @ transition_kernel_l + transition_bias_l),   l = 2 … L      (L = transition_depth)
    h_t = z_L                                                        the state, (batch, units)
    o_t = φ(… φ(h_t @ output_kernel_1 + output_bias_1) … )          (O = output_depth; o_t = h_t if 0)

``transition_depth = 1`` with no input or output layers is the Elman network, weight for weight
``keras.layers.SimpleRNN``. Every layer has ``units`` units. A deeper transition gives the
gradient more nonlinearities to pass per time step (Pascanu et al. add shortcut connections
for that; here there are none), so it is usually best with a small depth of 2 or 3.
"""

from __future__ import annotations

import keras
from keras import ops

from pipeline.layers.cell_layer import CellArgumentsConfig
from pipeline.layers.checks import check_positive_integer
from pipeline.layers.elman import _check_activation

_CELL_ARGUMENTS = (
    "units", "transition_depth", "input_depth", "output_depth", "activation", "use_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer",
)


def _check_depth(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Argument `{name}` must be an integer >= 0; received {name}={value!r}.")
    return value


@keras.saving.register_keras_serializable(package="pipeline")
class DeepTransitionCell(keras.layers.Layer):
    """One step of a deep-transition RNN: input MLP, transition MLP from ``[u_t, h_{t-1}]`` to ``h_t``, output MLP.

    Args:
        units: Positive integer, width of ``h_t`` and of every hidden layer.
        transition_depth: Positive integer ``L``, layers from ``h_{t-1}`` to ``h_t`` (1: Elman). Default 2.
        input_depth: Integer >= 0, layers applied to ``x_t`` before the transition. Default 0.
        output_depth: Integer >= 0, layers applied to ``h_t`` to give the output. Default 0.
        activation: ``φ`` of every layer; ``"tanh"`` (default), ``"softsign"``, ``"relu"``, ``"sigmoid"``.
        use_bias: Whether every layer adds a bias. Default ``True``.
        kernel_initializer: Every feed-forward kernel (``input_kernel_*``, ``kernel``,
            ``transition_kernel_*``, ``output_kernel_*``). Default ``"glorot_uniform"``.
        recurrent_initializer: ``recurrent_kernel`` ``(units, units)``. Default ``"orthogonal"``.
        bias_initializer: Every bias. Default ``"zeros"``.

    Call arguments:
        inputs: ``(batch, features)``; states: ``[h_{t-1}]``, ``(batch, units)``.

    Returns:
        ``(o_t, [h_t])``, both ``(batch, units)``.
    """

    def __init__(self, units, transition_depth=2, input_depth=0, output_depth=0, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 **kwargs):
        units = check_positive_integer("units", units)
        transition_depth = check_positive_integer("transition_depth", transition_depth)
        input_depth = _check_depth("input_depth", input_depth)
        output_depth = _check_depth("output_depth", output_depth)
        activation = _check_activation(activation)
        super().__init__(**kwargs)
        self.units, self.transition_depth = units, transition_depth
        self.input_depth, self.output_depth = input_depth, output_depth
        self.activation, self.use_bias = activation, bool(use_bias)
        self.activation_function = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.state_size = units
        self.output_size = units

    def _dense(self, name, fan_in):
        kernel = self.add_weight(shape=(fan_in, self.units), name=f"{name}kernel", initializer=self.kernel_initializer)
        bias = self.add_weight(shape=(self.units,), name=f"{name}bias", initializer=self.bias_initializer) \
            if self.use_bias else None
        return kernel, bias

    def build(self, input_shape):
        features = input_shape[-1]
        self.input_layers = [self._dense(f"input_{i + 1}_", features if i == 0 else self.units)
                             for i in range(self.input_depth)]
        fan_in = self.units if self.input_depth else features
        self.kernel = self.add_weight(shape=(fan_in, self.units), name="kernel", initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel",
                                                initializer=self.recurrent_initializer)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer) \
            if self.use_bias else None
        self.transition_layers = [self._dense(f"transition_{depth}_", self.units)
                                  for depth in range(2, self.transition_depth + 1)]
        self.output_layers = [self._dense(f"output_{j + 1}_", self.units) for j in range(self.output_depth)]

    def _apply(self, layers, values):
        for kernel, bias in layers:
            values = ops.matmul(values, kernel)
            values = self.activation_function(values if bias is None else values + bias)
        return values

    def call(self, inputs, states):
        previous = states[0] if isinstance(states, (list, tuple)) else states
        preactivation = ops.matmul(self._apply(self.input_layers, inputs), self.kernel) + \
            ops.matmul(previous, self.recurrent_kernel)
        hidden = self.activation_function(preactivation if self.bias is None else preactivation + self.bias)
        hidden = self._apply(self.transition_layers, hidden)
        output = self._apply(self.output_layers, hidden)
        return output, [hidden] if isinstance(states, (list, tuple)) else hidden

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        config = {name: getattr(self, name) for name in (
            "units", "transition_depth", "input_depth", "output_depth", "activation", "use_bias")}
        for name in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
            config[name] = keras.initializers.serialize(getattr(self, name))
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="pipeline")
class DeepTransition(CellArgumentsConfig, keras.layers.RNN):
    """A deep-transition RNN over a sequence; ``keras.layers.RNN`` gives masking, ``return_state``, stacking, ...

    Args:
        units, transition_depth, input_depth, output_depth, activation, use_bias, *_initializer:
            as in ``DeepTransitionCell``.
        **kwargs: Passed to ``keras.layers.RNN`` (``return_sequences``, ``return_state``,
            ``go_backwards``, ``stateful``, ``unroll``, ``name``, ...).

    Call arguments:
        sequences: ``(batch, timesteps, features)``; initial_state: optional ``[h_0]``;
        mask: optional ``(batch, timesteps)``, a ``False`` step keeps the state.

    Returns:
        ``(batch, units)`` (``o`` at the last step), or ``(batch, timesteps, units)`` with ``return_sequences``.

    Example:

    ```python
    hidden = DeepTransition(64, transition_depth=2, output_depth=1)(embedded)  # (batch, 64)
    ```
    """

    cell_arguments = _CELL_ARGUMENTS

    def __init__(self, units, transition_depth=2, input_depth=0, output_depth=0, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 **kwargs):
        cell = DeepTransitionCell(units, transition_depth=transition_depth, input_depth=input_depth,
                                  output_depth=output_depth, activation=activation, use_bias=use_bias,
                                  kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                                  bias_initializer=bias_initializer, dtype=kwargs.get("dtype"),
                                  name="deep_transition_cell")
        super().__init__(cell, **kwargs)

    @property
    def units(self):
        return self.cell.units
