"""The regularisers of AWD-LSTM (Merity, Keskar & Socher 2018) as Keras layers.

"Regularizing and Optimizing LSTM Language Models" trains a word-level LSTM language model with
five kinds of noise and penalty; four of them are layers here (the fifth, variable-length BPTT,
belongs to the data pipeline):

- ``EmbeddingDropout``: drops whole word types from the embedding (one mask over the vocabulary);
- ``LockedDropout``: variational dropout, one mask per sequence reused at every time step;
- ``WeightDropLSTM`` (in :mod:`pipeline.layers.weight_drop`): an LSTM whose recurrent kernel gets
  DropConnect, one mask per forward call;
- ``ActivationRegularization``: AR and TAR penalties on the hidden states, added with ``add_loss``.

Each is a no-op at inference (``training=False``) and when its rate (or coefficients) is 0, passes
the Keras mask through, draws its noise from a ``keras.random.SeedGenerator(seed)`` and uses only
the public Keras API, so it runs on every backend (checked on TensorFlow and JAX).

A language model in the AWD-LSTM order (the paper's section 5 values for Penn Treebank)::

    ids (batch, T) -> Embedding(mask_zero=True) -> EmbeddingDropout(0.1)   [dropoute]
        -> LockedDropout(0.4)                                                [dropouti]
        -> WeightDropLSTM(units, recurrent_dropconnect=0.5) -> LockedDropout(0.3) -> ...  [wdrop, dropouth]
        -> last WeightDropLSTM -> ActivationRegularization(beta=1)            [TAR, undropped]
        -> LockedDropout(0.4) -> ActivationRegularization(alpha=2)           [dropout, AR on dropped]
        -> Dense(vocabulary_size)
"""

from __future__ import annotations

import keras
from keras import ops

from pipeline.layers.checks import check_coefficient, check_positive_integer, check_rate, check_seed


def dropout_mask(shape, rate, seed_generator, dtype):
    """A tensor of ``shape`` holding 0 (probability ``rate``) or ``1 / (1 - rate)``."""
    return keras.random.dropout(ops.ones(shape, dtype=dtype), rate=rate, seed=seed_generator)


@keras.saving.register_keras_serializable(package="pipeline")
class LockedDropout(keras.layers.Layer):
    """Variational ("locked") dropout: one mask per sequence, the same at every time step.

    ``keras.layers.Dropout`` draws a fresh mask for every ``(batch, timestep, feature)`` entry;
    between recurrent layers that lets each step see a different network. Locked dropout (Gal &
    Ghahramani 2016; AWD-LSTM's ``dropouti``, ``dropouth`` and ``dropout``) draws one Bernoulli mask
    ``m`` of shape ``(batch, 1, features)`` per call and broadcasts it over time::

        m[b, 0, j] ~ Bernoulli(1 - rate) / (1 - rate)
        y[b, t, j] = x[b, t, j] * m[b, 0, j]

    Args:
        rate: Fraction in [0, 1) of the features to drop per sequence.
        seed: Integer seed of the masks, or ``None``.
        **kwargs: Passed to ``keras.layers.Layer`` (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, timesteps, features)``.
        training: Whether to drop; at inference the layer returns ``inputs`` unchanged.
        mask: Optional ``(batch, timesteps)``; passed through unchanged.

    Returns:
        ``(batch, timesteps, features)``, the same shape and dtype as ``inputs``.

    Example:

    ```python
    hidden = keras.layers.LSTM(64, return_sequences=True)(embedded)
    hidden = LockedDropout(0.3, seed=0)(hidden)  # (batch, timesteps, 64)
    ```
    """

    def __init__(self, rate, seed=None, **kwargs):
        rate = check_rate("rate", rate)
        seed = check_seed(seed)
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        mask_shape = (ops.shape(inputs)[0], 1, ops.shape(inputs)[2])
        return inputs * dropout_mask(mask_shape, self.rate, self.seed_generator, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="pipeline")
class EmbeddingDropout(keras.layers.Layer):
    """Drop whole word types: every occurrence of a dropped word is zeroed together.

    Dropping embedding rows rather than entries of the embedded sequence (Gal & Ghahramani 2016,
    AWD-LSTM's ``dropoute``) removes a word from the sentence wherever it occurs, so the model cannot
    rely on any single word. AWD-LSTM masks the embedding matrix; applied to the embedding's output
    given the token ids this is the same::

        m[w] ~ Bernoulli(1 - rate) / (1 - rate)        for each word type w < vocabulary_size
        y[b, t, :] = embedded[b, t, :] * m[token_ids[b, t]]

    With ``per_sequence=False`` (AWD-LSTM) one mask over the vocabulary serves the whole batch;
    with ``per_sequence=True`` (Gal & Ghahramani) each batch row draws its own ``m[b, w]``.

    Args:
        rate: Fraction in [0, 1) of the word types to drop.
        vocabulary_size: Positive integer; token ids must lie in ``[0, vocabulary_size)``.
        per_sequence: One mask per batch row instead of one per batch. Default ``False``.
        seed: Integer seed of the masks, or ``None``.
        **kwargs: Passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: ``[embedded, token_ids]``: ``(batch, timesteps, dim)`` floats and the
            ``(batch, timesteps)`` integer ids they were looked up from.
        training: Whether to drop; at inference the layer returns ``embedded`` unchanged.
        mask: Optional ``[embedded_mask, token_ids_mask]``; the output keeps ``embedded_mask``
            (an ``Embedding(mask_zero=True)`` marks padding id 0 there).

    Returns:
        ``(batch, timesteps, dim)``: ``embedded`` with the dropped types' rows zeroed and the
        others scaled by ``1 / (1 - rate)``.

    Example:

    ```python
    ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10000, 400, mask_zero=True)(ids)
    embedded = EmbeddingDropout(0.1, vocabulary_size=10000, seed=0)([embedded, ids])
    ```
    """

    def __init__(self, rate, vocabulary_size, per_sequence=False, seed=None, **kwargs):
        rate = check_rate("rate", rate)
        vocabulary_size = check_positive_integer("vocabulary_size", vocabulary_size)
        seed = check_seed(seed)
        super().__init__(**kwargs)
        self.rate = rate
        self.vocabulary_size = vocabulary_size
        self.per_sequence = bool(per_sequence)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def _split(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                f"EmbeddingDropout expects inputs=[embedded, token_ids]; received {type(inputs).__name__}."
            )
        return inputs

    def call(self, inputs, training=False):
        embedded, token_ids = self._split(inputs)
        if not training or self.rate == 0:
            return embedded
        token_ids = ops.cast(token_ids, "int32")
        if self.per_sequence:
            word_mask = dropout_mask((ops.shape(token_ids)[0], self.vocabulary_size),
                                      self.rate, self.seed_generator, embedded.dtype)
            token_mask = ops.take_along_axis(word_mask, token_ids, axis=1)
        else:
            word_mask = dropout_mask((self.vocabulary_size,), self.rate, self.seed_generator,
                                      embedded.dtype)
            token_mask = ops.take(word_mask, token_ids, axis=0)
        return embedded * ops.expand_dims(token_mask, -1)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = {"rate": self.rate, "vocabulary_size": self.vocabulary_size,
                  "per_sequence": self.per_sequence, "seed": self.seed}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="pipeline")
class ActivationRegularization(keras.layers.Layer):
    """Identity that adds AWD-LSTM's activation (AR) and temporal activation (TAR) penalties.

    On hidden states ``h`` of shape ``(batch, timesteps, units)`` with mask ``m`` (1 on real
    steps), in training::

        AR  = alpha * sum_{b,t,j} m[b,t] h[b,t,j]^2 / (units * sum_{b,t} m[b,t])
        TAR = beta  * sum_{b,t>0,j} p[b,t] (h[b,t,j] - h[b,t-1,j])^2 / (units * sum_{b,t>0} p[b,t])
        p[b,t] = m[b,t] * m[b,t-1]        (both steps real)

    i.e. ``alpha * mean(h_t^2)`` and ``beta * mean((h_t - h_{t-1})^2)`` over the real entries.
    AR keeps activations small; TAR keeps them slowly changing. Both go to ``self.add_loss`` and
    thus into ``model.fit``'s loss; at inference, or with both coefficients 0, nothing is added.

    AWD-LSTM applies them to the last recurrent layer's output: AR to the output *after* its
    LockedDropout, TAR to the output *before* it. Use two instances::

        hidden = WeightDropLSTM(units, return_sequences=True)(x)
        hidden = ActivationRegularization(beta=1.0)(hidden)    # TAR on the undropped output
        hidden = LockedDropout(0.4)(hidden)
        hidden = ActivationRegularization(alpha=2.0)(hidden)   # AR on the dropped output

    Args:
        alpha: Coefficient >= 0 of AR. Default 0.
        beta: Coefficient >= 0 of TAR. Default 0.
        **kwargs: Passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: ``(batch, timesteps, units)``.
        training: Whether to add the penalties.
        mask: Optional boolean ``(batch, timesteps)``; padded steps are left out, and passed through.

    Returns:
        ``inputs`` unchanged.

    Example:

    ```python
    hidden = ActivationRegularization(alpha=2.0, beta=1.0)(hidden)  # both on one tensor
    ```
    """

    def __init__(self, alpha=0.0, beta=0.0, **kwargs):
        alpha = check_coefficient("alpha", alpha)
        beta = check_coefficient("beta", beta)
        super().__init__(**kwargs)
        self.alpha = alpha
        self.beta = beta
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def penalties(self, inputs, mask=None):
        """``(AR, TAR)`` of ``inputs`` under ``mask`` as float32 scalars, with the coefficients applied."""
        hidden = ops.cast(inputs, "float32")
        if mask is None:
            step_weight = ops.ones(ops.shape(hidden)[:2], dtype="float32")
        else:
            step_weight = ops.cast(mask, "float32")
        units = ops.cast(ops.shape(hidden)[2], "float32")
        squares = ops.sum(ops.square(hidden), axis=-1)  # (batch, timesteps)
        activation = ops.sum(step_weight * squares) / (units * ops.maximum(ops.sum(step_weight), 1.0))
        pair_weight = step_weight[:, 1:] * step_weight[:, :-1]
        changes = ops.sum(ops.square(hidden[:, 1:] - hidden[:, :-1]), axis=-1)
        temporal = ops.sum(pair_weight * changes) / (units * ops.maximum(ops.sum(pair_weight), 1.0))
        return self.alpha * activation, self.beta * temporal

    def call(self, inputs, training=False, mask=None):
        if training and (self.alpha > 0 or self.beta > 0):
            activation, temporal = self.penalties(inputs, mask)
            if self.alpha > 0:
                self.add_loss(activation)
            if self.beta > 0:
                self.add_loss(temporal)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
