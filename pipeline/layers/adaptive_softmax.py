"""The adaptive softmax (Grave, Joulin, Cissé, Grangier & Jégou 2017) as a Keras layer.

A word language model spends most of its arithmetic on the output layer: ``h Wᵀ`` over the
whole vocabulary ``V`` at every position. Word frequencies follow Zipf's law, so a few
thousand words cover most tokens. The adaptive softmax splits the frequency-sorted vocabulary
at ``cutoffs = [c_1, ..., c_K]`` into

- a **head**: the ``c_1`` most frequent words plus one entry per tail cluster, scored from the
  full hidden state ``h`` ``(…, dim)``;
- **tail clusters** ``i = 1..K``: the ids ``[c_i, c_{i+1})`` (``c_{K+1} = V``), scored from a
  smaller projection ``h P_i`` of size ``dim / projection_factor**i``.

The distribution is exact and normalised over the whole vocabulary::

    log p(w) = log softmax(head)(w)                                    if w < c_1
    log p(w) = log softmax(head)(c_1 + i - 1) + log softmax(tail_i)(w - c_i)   if c_i <= w < c_{i+1}

Training needs only ``log p(target)``: the head for every position and, for each cluster, the
tail of the positions whose target falls in it (on TensorFlow only those rows are computed; on
other backends every row, with the same result). The full distribution ``(…, V)`` is built only
for evaluation and sampling.

The ids must be sorted by decreasing frequency (as :class:`pipeline.text.vocab.Vocabulary`
sorts them after its reserved tokens).

**Tied** (``tie_weights=True``; Press & Wolf 2017 for the full softmax, Baevski & Auli 2019 and
Grave et al. for clusters): the layer owns the input embedding ``E`` ``(V, dim)`` and is also the
model's embedding (called on int ids). Every word's output row comes from its input row: a head word's
logit is ``h · E_w + b_w``, and cluster ``i``'s, through the cluster's projection ``P_i`` ``(dim, d_i)``
on both sides, ``(h P_i) · (E_w P_i) + b_w``. Only the head's cluster entries keep their own kernel
``(dim, K)``; the tails' output matrices disappear.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from pipeline.layers.checks import check_positive_integer, check_seed

DEFAULT_CUTOFFS = (2000, 10000, 50000, 250000)


def default_cutoffs(vocabulary_size: int) -> list[int]:
    """Cutoffs for a vocabulary of ``vocabulary_size`` frequency-sorted ids.

    A head of 2,000 words, then clusters growing fivefold (Grave et al. use a head of a few
    thousand words and 2–4 clusters). A cluster smaller than a quarter of the part before it
    is merged into that part: it would cost a head entry and a projection for little saving.
    """
    cutoffs: list[int] = []
    for cutoff in DEFAULT_CUTOFFS:
        if cutoff >= vocabulary_size:
            break
        cutoffs.append(cutoff)
    while cutoffs and vocabulary_size - cutoffs[-1] < cutoffs[-1] / 4:
        cutoffs.pop()
    return cutoffs


@keras.saving.register_keras_serializable(package="pipeline")
class AdaptiveSoftmax(keras.layers.Layer):
    """Log-probabilities over a frequency-sorted vocabulary with a head and tail clusters.

    Args:
        vocabulary_size: ``V``, the number of ids (0 included).
        cutoffs: Strictly increasing ids in ``(0, V)`` where the tail clusters start; empty
            makes the layer an ordinary (full) log-softmax.
        projection_factor: Cluster ``i`` (from 1) projects the hidden state to
            ``max(1, dim // projection_factor**i)`` features before its output matrix.
        kernel_initializer: Initializer of every matrix.
        seed: Seed of the initializer when it is given by name (``None``: Keras' default).
        tie_weights: Own the embedding ``E`` ``(V, embedding_dim)`` and take the output rows from it
            (see the module docstring); the hidden states must then have ``embedding_dim`` features.
        embedding_dim: The size of ``E``'s rows (tied only; > 0).
        **kwargs: Passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: ``hidden`` ``(batch, timesteps, dim)`` (or any ``(…, dim)``), or the pair
            ``[hidden, targets]`` with integer ``targets`` ``(batch, timesteps)``; tied, also
            integer ids ``(batch, timesteps)``, which it embeds ``(batch, timesteps, dim)`` (id 0 masked).
        mask: Passed through (the hidden state's mask).

    Returns:
        ``hidden`` alone: float32 log-probabilities ``(…, V)``, a proper distribution over the
        whole vocabulary. ``[hidden, targets]``: float32 ``log p(target)`` ``(batch, timesteps)``,
        computed without the ``(…, V)`` tensor.

    Example:

    ```python
    adaptive = AdaptiveSoftmax(22000, [2000, 10000])
    log_probs = adaptive(hidden)                 # (batch, timesteps, 22000)
    target_log_probs = adaptive([hidden, ids])   # (batch, timesteps)
    ```
    """

    def __init__(self, vocabulary_size: int, cutoffs: Any = (), projection_factor: int = 4,
                 kernel_initializer: Any = "glorot_uniform", seed: int | None = None, tie_weights: bool = False,
                 embedding_dim: int = 0, **kwargs: Any) -> None:
        vocabulary_size = check_positive_integer("vocabulary_size", vocabulary_size)
        cutoffs = [int(c) for c in cutoffs]
        if any(not 0 < c < vocabulary_size for c in cutoffs) or any(b <= a for a, b in zip(cutoffs, cutoffs[1:])):
            raise ValueError(f"cutoffs must increase strictly within (0, {vocabulary_size}); got {cutoffs}")
        projection_factor = check_positive_integer("projection_factor", projection_factor)
        seed = check_seed(seed)
        if tie_weights:
            embedding_dim = check_positive_integer("embedding_dim", embedding_dim)
        super().__init__(**kwargs)
        self.tie_weights, self.embedding_dim = bool(tie_weights), int(embedding_dim)
        self.vocabulary_size, self.cutoffs, self.projection_factor = vocabulary_size, cutoffs, projection_factor
        self.seed = seed
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if seed is not None and isinstance(kernel_initializer, str):
            self.kernel_initializer = keras.initializers.get({"class_name": kernel_initializer,
                                                              "config": {"seed": seed}})
        self.supports_masking = True

    @property
    def head_size(self) -> int:
        """Words scored in the head plus one entry per tail cluster."""
        return (self.cutoffs[0] if self.cutoffs else self.vocabulary_size) + len(self.cutoffs)

    def cluster_bounds(self) -> list[tuple[int, int]]:
        """``(first id, end id)`` of each tail cluster."""
        edges = [*self.cutoffs, self.vocabulary_size]
        return list(zip(edges[:-1], edges[1:]))

    def build(self, input_shape: Any) -> None:
        if self.built:
            return
        hidden_shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and \
            isinstance(input_shape[0], (list, tuple)) else input_shape
        dim = self.embedding_dim if self.tie_weights else int(hidden_shape[-1])
        if self.tie_weights:  # first, as an embedding layer's only weight: what set_weights()[0] fills
            self.embeddings = self.add_weight(shape=(self.vocabulary_size, dim), name="embeddings",
                                              initializer="uniform")
        # tied: the cluster entries' columns only (the words' come from the embedding)
        self.head_kernel = self.add_weight(shape=(dim, len(self.cutoffs) if self.tie_weights else self.head_size),
                                           name="head_kernel", initializer=self.kernel_initializer)
        self.head_bias = self.add_weight(shape=(self.head_size,), name="head_bias", initializer="zeros")
        self.projections, self.tail_kernels, self.tail_biases = [], [], []
        for i, (start, end) in enumerate(self.cluster_bounds(), start=1):
            width = max(1, dim // self.projection_factor ** i)
            self.projections.append(self.add_weight(shape=(dim, width), name=f"tail_{i}_projection",
                                                    initializer=self.kernel_initializer))
            if not self.tie_weights:
                self.tail_kernels.append(self.add_weight(shape=(width, end - start), name=f"tail_{i}_kernel",
                                                         initializer=self.kernel_initializer))
            self.tail_biases.append(self.add_weight(shape=(end - start,), name=f"tail_{i}_bias",
                                                    initializer="zeros"))

    def _log_softmax(self, x: Any, kernel: Any, bias: Any) -> Any:
        logits = ops.matmul(x, ops.cast(kernel, x.dtype)) + ops.cast(bias, x.dtype)
        return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)

    def _head_kernel(self) -> Any:
        """``(dim, head_size)``: tied, the head words' embedding rows, transposed, then the cluster entries."""
        if not self.tie_weights:
            return self.head_kernel
        words = self.embeddings[:self.cutoffs[0]] if self.cutoffs else self.embeddings
        return ops.concatenate([ops.transpose(words), ops.cast(self.head_kernel, words.dtype)], axis=1)

    def _tail_kernel(self, i: int) -> Any:
        """``(d_i, cluster size)``: tied, the cluster's embedding rows through its projection, ``(E_i P_i)ᵀ``."""
        if not self.tie_weights:
            return self.tail_kernels[i]
        start, end = self.cluster_bounds()[i]
        return ops.transpose(ops.matmul(self.embeddings[start:end], self.projections[i]))

    def _tail(self, hidden: Any, i: int) -> Any:
        projected = ops.matmul(hidden, ops.cast(self.projections[i], hidden.dtype))
        return self._log_softmax(projected, self._tail_kernel(i), self.tail_biases[i])

    def call(self, inputs: Any) -> Any:
        if isinstance(inputs, (list, tuple)):
            hidden, targets = inputs
            return self._target_log_probabilities(ops.cast(hidden, self.compute_dtype), targets)
        if self.tie_weights and "int" in str(inputs.dtype):  # the embedding
            return ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)
        hidden = ops.cast(inputs, self.compute_dtype)
        head = self._log_softmax(hidden, self._head_kernel(), self.head_bias)
        if not self.cutoffs:
            return head
        parts = [head[..., :self.cutoffs[0]]]
        for i in range(len(self.cutoffs)):
            parts.append(head[..., self.cutoffs[0] + i:self.cutoffs[0] + i + 1] + self._tail(hidden, i))
        return ops.concatenate(parts, axis=-1)

    def _target_log_probabilities(self, hidden: Any, targets: Any) -> Any:
        shape = ops.shape(targets)
        targets = ops.reshape(ops.cast(targets, "int32"), (-1,))
        flat = ops.reshape(hidden, (-1, ops.shape(hidden)[-1]))
        head = self._log_softmax(flat, self._head_kernel(), self.head_bias)
        if not self.cutoffs:
            return ops.reshape(_pick(head, targets), shape)
        # Head column of each target: the word itself, or its cluster's entry.
        column = targets
        for i, (start, end) in enumerate(self.cluster_bounds()):
            column = ops.where((targets >= start) & (targets < end), self.cutoffs[0] + i, column)
        result = _pick(head, column)
        dynamic = keras.backend.backend() == "tensorflow"
        for i, (start, end) in enumerate(self.cluster_bounds()):
            inside = (targets >= start) & (targets < end)
            if dynamic:  # only the rows whose target is in this cluster
                rows = ops.where(inside)[0]  # a list of index tensors, one per dimension
                picked = _pick(self._tail(ops.take(flat, rows, axis=0), i), ops.take(targets, rows) - start)
                result = result + ops.scatter(ops.expand_dims(rows, -1), picked, ops.shape(result))
            else:
                local = ops.clip(targets - start, 0, end - start - 1)
                result = result + ops.where(inside, _pick(self._tail(flat, i), local), 0.0)
        return ops.reshape(result, shape)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            return mask[0]
        if self.tie_weights and "int" in str(inputs.dtype):  # embedding: padding id 0 is masked
            return ops.not_equal(inputs, 0)
        return mask

    def compute_output_shape(self, input_shape: Any) -> tuple:
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            return tuple(input_shape[1])
        return (*input_shape[:-1], self.vocabulary_size)

    def compute_output_spec(self, inputs: Any) -> Any:
        if isinstance(inputs, (list, tuple)):
            return keras.KerasTensor(inputs[1].shape, dtype="float32")
        if self.tie_weights and "int" in str(inputs.dtype):
            return keras.KerasTensor((*inputs.shape, self.embedding_dim), dtype=self.compute_dtype)
        return keras.KerasTensor((*inputs.shape[:-1], self.vocabulary_size), dtype="float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "cutoffs": list(self.cutoffs),
                "projection_factor": self.projection_factor, "seed": self.seed, "tie_weights": self.tie_weights,
                "embedding_dim": self.embedding_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


def _pick(log_probs: Any, columns: Any) -> Any:
    """``log_probs[n, columns[n]]`` for ``log_probs`` ``(N, C)`` and ``columns`` ``(N,)``."""
    return ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(columns, -1), axis=-1), -1)
