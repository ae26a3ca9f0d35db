"""The model registry: a config picks an architecture by name, no if/else chains.

A recurrent layer kind (``lstm``, ``gru``, ``simple_rnn``, ``bilstm``, ``bigru``,
and our ``elman``, ``esn``, ``jordan`` and ``deep_transition``) is a builder function registered with
:func:`register`. Its keyword arguments *are* the options a
``[[model.layers]]`` table may hold, so the registry checks keys (with a "did
you mean") and value types against the signature, and a new kind needs no
change anywhere else.

Every task builds its network from the same pieces: :func:`embedding` (ids
``(batch, timesteps)`` -> ``(batch, timesteps, dim)`` with masking),
:func:`recurrent_stack` over the ``[[model.layers]]`` tables, and the initializers.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import nearest
from pipeline.errors import PipelineError
from pipeline.sections import ModelConfig

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class LayerContext:
    """What the model builder decides for a layer, as opposed to what the config says."""

    return_sequences: bool
    kernel_initializer: Any
    recurrent_initializer: Any
    seed: int
    name: str
    stateful: bool = False


Builder = Callable[..., Any]  # returns a keras.layers.Layer
RECURRENT_LAYERS: dict[str, Builder] = {}


def register(kind: str) -> Callable[[Builder], Builder]:
    """Register ``builder(*, context: LayerContext, **options)`` under ``kind``."""

    def decorator(builder: Builder) -> Builder:
        RECURRENT_LAYERS[kind] = builder
        return builder

    return decorator


def _options(builder: Builder) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(builder).parameters.items() if name != "context"}


CHECKED_HERE = frozenset({"units", "dropout", "recurrent_dropout", "weight_drop"})


def check_layer_spec(spec: dict, position: int) -> tuple[Builder, dict]:
    """Validate one ``[[model.layers]]`` table; return its builder and options."""
    where = f"model.layers[{position}]"
    kind = spec.get("type")
    if kind not in RECURRENT_LAYERS:
        hint = nearest(str(kind), RECURRENT_LAYERS) or f" (one of: {', '.join(sorted(RECURRENT_LAYERS))})"
        raise PipelineError(f"config key '{where}.type' = {kind!r} is not a layer kind{hint}")
    builder = RECURRENT_LAYERS[kind]
    parameters = _options(builder)
    options = {}
    for key, value in spec.items():
        if key == "type":
            continue
        if key not in parameters:
            hint = nearest(key, parameters) or f" (valid keys for {kind}: {', '.join(sorted(parameters))})"
            raise PipelineError(f"unknown config key '{where}.{key}'{hint}")
        default = parameters[key].default
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if default is not None and type(value) is not type(default):
            raise PipelineError(f"config key '{where}.{key}' = {value!r} is invalid: it must be "
                                f"{type(default).__name__}")
        options[key] = value
    units = options.get("units", parameters["units"].default if "units" in parameters else 1)
    if units < 1:
        raise PipelineError(f"config key '{where}.units' = {units!r} is invalid: it must be >= 1")
    for key in ("dropout", "recurrent_dropout", "weight_drop"):
        value = options.get(key, 0.0)
        if not 0.0 <= value < 1.0:
            raise PipelineError(f"config key '{where}.{key}' = {value!r} is invalid: it must be in [0, 1)")
    if not set(options) - CHECKED_HERE:
        return builder, options  # defaults and the values checked above: no need to import Keras (seconds)
    # Constructing the layer (no weights yet) runs its own argument checks, so a bad value
    # (an unknown activation, leak_rate 0, ...) fails here, at config load, naming the table.
    probe = LayerContext(return_sequences=False, kernel_initializer="glorot_uniform",
                         recurrent_initializer="orthogonal", seed=0, name=f"check_{position}")
    try:
        builder(context=probe, **options)
    except (ValueError, TypeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        named = next((key for key in options if re.search(rf"\b{key}\b", message)), None)
        place = f"config key '{where}.{named}'" if named else f"config table '{where}' (type = {kind!r})"
        raise PipelineError(f"{place}: {message}") from None
    return builder, options


def check_layers(settings: ModelConfig) -> None:
    """Check every ``[[model.layers]]`` table now, before any stage runs."""
    for position, spec in enumerate(settings.layers):
        check_layer_spec(spec, position)


def _keras_recurrent(class_name: str, bidirectional: bool) -> Builder:
    def build(units: int = 64, dropout: float = 0.0, recurrent_dropout: float = 0.0, *,
              context: LayerContext) -> keras.layers.Layer:
        import keras

        layer = getattr(keras.layers, class_name)(units, dropout=dropout, recurrent_dropout=recurrent_dropout,
                            return_sequences=context.return_sequences, stateful=context.stateful,
                            kernel_initializer=context.kernel_initializer,
                            recurrent_initializer=context.recurrent_initializer, seed=context.seed,
                            name=None if bidirectional else context.name)
        return keras.layers.Bidirectional(layer, name=context.name) if bidirectional else layer

    build.__doc__ = f"{'Bidirectional ' if bidirectional else ''}keras.layers.{class_name}."
    return build


register("lstm")(_keras_recurrent("LSTM", False))
register("gru")(_keras_recurrent("GRU", False))
register("simple_rnn")(_keras_recurrent("SimpleRNN", False))
register("bilstm")(_keras_recurrent("LSTM", True))
register("bigru")(_keras_recurrent("GRU", True))


@register("elman")
def elman(units: int = 64, dropout: float = 0.0, recurrent_dropout: float = 0.0, activation: str = "tanh", *,
          context: LayerContext) -> keras.layers.Layer:
    """Our Elman simple RNN (``pipeline.layers.elman``): ``h_t = φ(W_in x_t + W_rec h_{t-1} + b)``."""
    from pipeline.layers.elman import Elman

    return Elman(units, activation=activation, dropout=dropout, recurrent_dropout=recurrent_dropout,
                 return_sequences=context.return_sequences, stateful=context.stateful,
                 kernel_initializer=context.kernel_initializer, recurrent_initializer=context.recurrent_initializer,
                 seed=context.seed, name=context.name)


@register("weight_drop_lstm")
def weight_drop_lstm(units: int = 64, weight_drop: float = 0.5, *, context: LayerContext) -> keras.layers.Layer:
    """An LSTM with DropConnect on its recurrent weights (AWD-LSTM, ``pipeline.layers.weight_drop``).

    One Bernoulli mask over the recurrent kernel per batch, the same at every time step, so
    the recurrent connections are regularised without disturbing the LSTM's memory over time.
    Its weights have the shapes of ``lstm``'s, so a pretrained one can start an ``lstm``.
    """
    from pipeline.layers.weight_drop import WeightDropLSTM

    return WeightDropLSTM(units, recurrent_dropconnect=weight_drop, return_sequences=context.return_sequences,
                          stateful=context.stateful, kernel_initializer=context.kernel_initializer,
                          recurrent_initializer=context.recurrent_initializer, seed=context.seed, name=context.name)


@register("jordan")
def jordan(units: int = 256, activation: str = "tanh", state_decay: float = 0.0, *,
           context: LayerContext) -> keras.layers.Layer:
    """Jordan's output-to-hidden recurrence (``pipeline.layers.jordan.JordanHidden``), for language models.

    The previous output of a language model is the current input token, so ``h_t = φ(s_t R + b)`` with
    ``s_t = state_decay · s_{t-1} + e(w_t)``: teacher forcing in training, own samples fed back in
    generation, and no loop at all (parallel over time). ``state_decay = 0``: a neural bigram model.
    """
    from pipeline.layers.jordan import JordanHidden

    if context.stateful and state_decay:
        raise PipelineError(f"config key 'train.regime' = \"tbptt\" needs state_decay = 0 in a jordan layer (got "
                            f"{state_decay!r}): it carries no state between windows; use \"sentences\"")
    return JordanHidden(units, activation=activation, state_decay=state_decay,
                        return_sequences=context.return_sequences, kernel_initializer=context.kernel_initializer,
                        name=context.name)


@register("deep_transition")
def deep_transition(units: int = 64, transition_depth: int = 2, input_depth: int = 0, output_depth: int = 0,
                    activation: str = "tanh", *, context: LayerContext) -> keras.layers.Layer:
    """A deep-transition RNN (Pascanu et al. 2014, ``pipeline.layers.deep_transition``): an MLP of
    ``transition_depth`` layers from ``h_{t-1}`` to ``h_t``, optional MLPs before (``input_depth``) and after
    (``output_depth``)."""
    from pipeline.layers.deep_transition import DeepTransition

    return DeepTransition(units, transition_depth=transition_depth, input_depth=input_depth,
                          output_depth=output_depth, activation=activation,
                          return_sequences=context.return_sequences, stateful=context.stateful,
                          kernel_initializer=context.kernel_initializer,
                          recurrent_initializer=context.recurrent_initializer, name=context.name)


@register("esn")
def esn(units: int = 500, leak_rate: float = 0.3, spectral_radius: float = 0.9, input_scaling: float = 1.0,
        connectivity: float = 0.1, input_connectivity: float = 1.0, bias_scaling: float = 1.0, *,
        context: LayerContext) -> keras.layers.Layer:
    """Our Echo State Network reservoir (``pipeline.layers.esn``): fixed random weights, leaky tanh units.

    Pair it with ``model.readout = "ridge"``: only the readout is fitted, in closed form.
    """
    from pipeline.layers.esn import Reservoir

    return Reservoir(units, leak_rate=leak_rate, spectral_radius=spectral_radius, input_scaling=input_scaling,
                     connectivity=connectivity, input_connectivity=input_connectivity,
                     bias_scaling=bias_scaling, seed=context.seed, return_sequences=context.return_sequences,
                     stateful=context.stateful, name=context.name)


def kernel_initializer(settings: ModelConfig, seed: int) -> keras.initializers.Initializer:
    """Glorot (Xavier) uniform by default: variance 2 / (fan_in + fan_out) keeps activations in range."""
    import keras

    if settings.initializer == "uniform":
        return keras.initializers.RandomUniform(-settings.init_scale, settings.init_scale, seed=seed)
    return keras.initializers.get({"class_name": settings.initializer, "config": {"seed": seed}})


def recurrent_initializer(settings: ModelConfig, seed: int) -> keras.initializers.Initializer:
    """Orthogonal (norm-preserving) by default; ``uniform`` applies ±init_scale to every weight (Zaremba et al.)."""
    import keras

    if settings.initializer == "uniform":
        return kernel_initializer(settings, seed)
    return keras.initializers.Orthogonal(seed=seed)


def recurrent_stack(x: Any, settings: ModelConfig, seed: int, last_returns_sequences: bool,
                    stateful: bool = False, initial_state: Callable[[keras.layers.Layer], list] | None = None,
                    between: Callable[[int], keras.layers.Layer] | None = None) -> Any:
    """Apply the ``[[model.layers]]`` stack to ``x`` ``(batch, timesteps, features)``.

    ``initial_state(layer)``, when given, returns the initial state tensors of the first layer
    (one per entry of its cell's ``state_size``). ``between(position)``, when given, returns a
    layer applied to the output of layer ``position`` before the next one (e.g. locked dropout).
    """
    checked = [check_layer_spec(spec, i) for i, spec in enumerate(settings.layers)]
    for position, (builder, options) in enumerate(checked):
        last = position == len(checked) - 1
        context = LayerContext(
            return_sequences=last_returns_sequences or not last,
            kernel_initializer=kernel_initializer(settings, seed + position),
            recurrent_initializer=recurrent_initializer(settings, seed + 200 + position),
            seed=seed + 100 + position, name=f"recurrent_{position}", stateful=stateful,
        )
        layer = builder(context=context, **options)
        if position == 0 and initial_state is not None:
            x = layer(x, initial_state=initial_state(layer))
        else:
            x = layer(x)
        if between is not None and not last:
            x = between(position)(x)
    return x


def embedding(vocabulary_size: int, dimension: int, trainable: bool, name: str = "embedding",
              trainable_rows: int | None = None) -> keras.layers.Layer:
    """Ids ``(batch, timesteps)`` -> vectors ``(batch, timesteps, dimension)``, id 0 masked.

    ``trainable_rows``: when the embedding trains, only that many rows do (those the training data reaches:
    :class:`pipeline.layers.embedding.PartlyFrozenEmbedding`, the same training at lower cost); ``None`` or the
    whole vocabulary: a ``keras.layers.Embedding``. Set its start with :func:`set_embedding_matrix`.
    """
    import keras

    if trainable and trainable_rows is not None and 0 < trainable_rows < vocabulary_size:
        from pipeline.layers.embedding import PartlyFrozenEmbedding

        return PartlyFrozenEmbedding(vocabulary_size, dimension, trainable_rows, name=name)
    return keras.layers.Embedding(vocabulary_size, dimension, mask_zero=True, trainable=trainable, name=name)


def set_embedding_matrix(layer: keras.layers.Layer, matrix: np.ndarray,
                         trainable_ids: np.ndarray | None = None) -> None:
    """Set the whole ``(vocabulary, dimension)`` matrix of a layer :func:`embedding` built; ``trainable_ids``: the
    rows that train, when it was built with ``trainable_rows``."""
    from pipeline.layers.embedding import PartlyFrozenEmbedding

    if isinstance(layer, PartlyFrozenEmbedding):
        layer.assign(matrix, trainable_ids)
    else:
        layer.set_weights([matrix])


def embedding_matrix_of(layer: keras.layers.Layer) -> np.ndarray:
    """The whole ``(vocabulary, dimension)`` matrix of a layer :func:`embedding` built."""
    from pipeline.layers.embedding import PartlyFrozenEmbedding

    return layer.matrix() if isinstance(layer, PartlyFrozenEmbedding) else np.asarray(layer.get_weights()[0])


def trainable_parameters(model: keras.Model) -> int:
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))
