"""What our layers and models compute on the Keras backend of this process (for tests/test_backends.py).

Keras fixes its backend when first imported, so tests/test_backends.py runs :func:`main` once in a
fresh process with ``KERAS_BACKEND=jax`` (every check, one process start) and calls :func:`results`
for the deterministic checks in its own TensorFlow process, then compares the two. Weights and inputs
come from NumPy generators with fixed seeds, so both backends compute from the same numbers; what
Keras' random generators draw (dropout masks) differs between backends and is only checked for its
structure. Every array is returned as nested lists of floats (JSON keeps NaN and infinities).

Importable as ``backend_checks`` (``pythonpath = tests``); nothing runs at import time.
"""

from __future__ import annotations

import json
import sys
import tempfile

import keras
import numpy as np

# The checks whose numbers do not depend on a random draw of the backend: compared with TensorFlow's.
DETERMINISTIC = ("adaptive_softmax", "weight_drop", "regularization", "char_encoder", "lsm", "generator",
                 "adversarial")


def plain(value) -> list:
    """A backend tensor or array as nested lists of float64 values."""
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64).tolist()


def random_weights(layer, seed: int, scale: float = 0.5) -> None:
    """Every weight of ``layer`` (a layer or a model) uniform in ±scale, from one NumPy seed."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-scale, scale, size=w.shape).astype(w.dtype) for w in layer.get_weights()])


def adaptive_softmax() -> dict:
    """The adaptive softmax's full distribution and its ``log p(target)``, eagerly and compiled in a model.

    On TensorFlow ``log p(target)`` gathers the rows of each cluster; on other backends it computes every
    row and keeps the cluster's (the path no TensorFlow test runs).
    """
    from pipeline.layers.adaptive_softmax import AdaptiveSoftmax

    vocabulary_size, dimension = 50, 16
    layer = AdaptiveSoftmax(vocabulary_size, [10, 25])
    layer.build((None, None, dimension))
    random_weights(layer, seed=0, scale=0.7)
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(3, 7, dimension)).astype("float32")
    targets = rng.integers(0, vocabulary_size, size=(3, 7)).astype("int32")
    targets[0, :3] = [3, 12, 40]  # the head and both tail clusters, whatever the draw
    hidden_input = keras.Input((None, dimension))
    target_input = keras.Input((None,), dtype="int32")
    model = keras.Model([hidden_input, target_input], layer([hidden_input, target_input]))
    return {"targets": targets.tolist(), "log_probabilities": plain(layer(hidden)),
            "target_log_probabilities": plain(layer([hidden, targets])),
            "compiled_target_log_probabilities": plain(model.predict_on_batch([hidden, targets]))}


def weight_drop() -> dict:
    """``WeightDropLSTM`` at inference (and Keras' LSTM with its weights), with a given DropConnect mask
    in training, and with masks it draws itself."""
    from pipeline.layers.weight_drop import WeightDropLSTM

    rate, units = 0.4, 5
    layer = WeightDropLSTM(units, recurrent_dropconnect=rate, seed=3, return_sequences=True)
    layer.build((None, 6, 3))
    random_weights(layer, seed=2)
    twin = keras.layers.LSTM(units, return_sequences=True)
    twin.build((None, 6, 3))
    twin.set_weights(layer.get_weights())
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(2, 6, 3)).astype("float32")
    given_mask = ((rng.random((units, 4 * units)) >= rate) / (1 - rate)).astype("float32")
    return {"rate": rate, "inference": plain(layer(inputs)), "keras_lstm": plain(twin(inputs)),
            "given_mask": plain(layer(inputs, training=True, recurrent_kernel_mask=given_mask)),
            "drawn": plain(layer(inputs, training=True)),
            "sampled_masks": [plain(layer.sample_recurrent_kernel_mask()) for _ in range(2)]}


def regularization() -> dict:
    """The AWD-LSTM regularisers: locked and embedding dropout in training and at inference, AR/TAR
    penalties under a mask and what ``add_loss`` records."""
    from pipeline.layers.regularization import ActivationRegularization, EmbeddingDropout, LockedDropout

    rng = np.random.default_rng(5)
    ones = np.ones((3, 6, 4), dtype="float32")
    locked = LockedDropout(0.5, seed=1)
    token_ids = rng.integers(0, 9, size=(2, 7)).astype("int32")
    embedded = np.ones((2, 7, 3), dtype="float32")
    words = EmbeddingDropout(0.5, vocabulary_size=9, seed=2)
    hidden = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=bool)
    penalties = ActivationRegularization(alpha=2.0, beta=1.0)
    activation, temporal = penalties.penalties(hidden, mask)
    penalties(hidden, training=True, mask=mask)
    return {"locked_training": plain(locked(ones, training=True)), "locked_inference": plain(locked(ones)),
            "token_ids": token_ids.tolist(), "embedding_training": plain(words([embedded, token_ids], training=True)),
            "embedding_inference": plain(words([embedded, token_ids])),
            "penalties": [float(activation), float(temporal)],
            "added_losses": [float(keras.ops.convert_to_numpy(loss)) for loss in penalties.losses]}


def char_encoder() -> dict:
    """``CharacterEncoder`` in both modes over ids with padded characters and a padding token, eagerly and
    compiled in a model."""
    from pipeline.layers.char_encoder import CharacterEncoder

    ids = np.random.default_rng(6).integers(1, 21, size=(2, 4, 5)).astype("int32")
    ids[0, 1, 3:] = 0  # a short token
    ids[1, 3] = 0  # a padding token
    report = {}
    for mode in ("cnn", "bilstm"):
        layer = CharacterEncoder(mode, buckets=20, char_dim=6, units=8, widths=(2, 3), seed=0)
        layer.build((None, 4, 5))
        random_weights(layer, seed=7)
        char_input = keras.Input((4, 5), dtype="int32")
        model = keras.Model(char_input, layer(char_input))
        report[mode] = {"vectors": plain(layer(ids)), "compiled": plain(model.predict_on_batch(ids)),
                        "mask": plain(layer.compute_mask(ids))}
    return report


def lsm() -> dict:
    """The spiking liquid's filtered traces and spikes over random input spikes, compiled (its matrices come
    from a NumPy seed, so they are the same on every backend)."""
    from pipeline.layers.lsm import SpikingReservoir, run_reservoir

    spikes_in = (np.random.default_rng(8).random((2, 60, 3)) < 0.1).astype("float32")
    return {"traces": plain(run_reservoir(SpikingReservoir(30, seed=0, return_sequences=True), spikes_in)),
            "spikes": plain(run_reservoir(SpikingReservoir(30, seed=0, return_sequences=True, return_spikes=True),
                                          spikes_in))}


def generator() -> dict:
    """A language model with a weight-dropped LSTM and an adaptive softmax: its next-token distribution and
    one SGD step of its training twin (AR and TAR on), without dropout so the step is the same on every
    backend; then two steps with every AWD regulariser on (random masks)."""
    from lm_helpers import model_settings, random_matrix

    from pipeline.language_model.model import TargetNegativeLogLikelihood, build_generator_pair

    rng = np.random.default_rng(9)
    token_ids = rng.integers(1, 30, size=(4, 8)).astype("int32")
    inputs, targets = token_ids[:, :-1], token_ids[:, 1:]
    targets[0, -2:] = 0  # padding: no target
    report = {}
    for name, rates in (("deterministic", {}),
                        ("regularised", {"embedding_dropout": 0.1, "input_dropout": 0.2, "output_dropout": 0.3})):
        settings = model_settings({"type": "weight_drop_lstm", "units": 8, "weight_drop": 0.5 if rates else 0.0},
                                  output="adaptive", tie_weights=False, cutoffs=(10, 20),
                                  activation_regularization=1.0, temporal_activation_regularization=1.0, **rates)
        model, trainee = build_generator_pair(settings, random_matrix(30, 8, seed=0), seed=0)
        random_weights(trainee, seed=10)
        initial_weights = [plain(w) for w in trainee.get_weights()]
        trainee.compile(optimizer=keras.optimizers.SGD(0.5), loss=TargetNegativeLogLikelihood())
        probabilities = model.predict_on_batch(inputs)
        losses = [float(trainee.train_on_batch([inputs, targets], targets)) for _ in range(1 if not rates else 2)]
        report[name] = {"probabilities": plain(probabilities), "losses": losses, "initial_weights": initial_weights,
                        "weights": [plain(w) for w in trainee.get_weights()]}
    return report


def classifier() -> dict:
    """A classifier over every recurrent kind of ours plus a Keras GRU, attention pooling on top: two epochs
    on random ids, saved as .keras, reloaded with safe_mode."""
    from pipeline.classifier.model import build_classifier
    from pipeline.runs import register_custom_objects
    from pipeline.sections import ModelConfig, TrainConfig
    from pipeline.text.batches import SequenceBatches
    from pipeline.training import make_deterministic, make_optimizer

    make_deterministic(7)
    rng = np.random.default_rng(7)
    matrix = rng.normal(0, 0.5, (30, 8)).astype("float32")
    kinds = [{"type": "elman", "units": 6}, {"type": "esn", "units": 12}, {"type": "jordan", "units": 6},
             {"type": "deep_transition", "units": 6}, {"type": "gru", "units": 6}]
    settings = ModelConfig(layers=tuple(kinds), pooling="attention", attention_units=4)
    model = build_classifier(settings, matrix, 3, seed=7)
    model.compile(optimizer=make_optimizer(TrainConfig(learning_rate=0.01)), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    sequences = [rng.integers(1, 30, size=rng.integers(2, 9)) for _ in range(48)]
    targets = np.array([int(s[0]) % 3 for s in sequences])
    batches = SequenceBatches(sequences, targets, 16, 10, np.random.default_rng(1))
    history = model.fit(batches, epochs=2, verbose=0).history
    path = tempfile.mkdtemp() + "/model.keras"
    model.save(path)
    register_custom_objects()
    reloaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    fixed = SequenceBatches(sequences, targets, 16, 10)
    before, after = fixed.predict(model), fixed.predict(reloaded)
    return {"loss": history["loss"], "layers": sorted({type(layer).__name__ for layer in model.layers}),
            "max_difference": float(np.abs(before - after).max())}


ADVERSARIAL_CASES = {  # case: (train.adversarial, train.virtual_adversarial, embedding trainable, sample weights)
    "trainable": (0.1, 0.0, True, (1, 1, 1, 1)), "frozen": (0.1, 0.0, False, (1, 1, 1, 1)),
    "virtual": (0.0, 0.2, True, (1, 1, 1, 1)), "both": (0.1, 0.2, True, (1, 1, 1, 1)),
    "unlabelled": (0.0, 0.2, True, (0, 0, 0, 0)), "half_labelled": (0.1, 0.2, True, (1.5, 0, 0.5, 0))}


def adversarial() -> dict:
    """One SGD step (rate 1) of a bag-of-vectors softmax classifier with (virtual) adversarial training on its
    embedding (:mod:`pipeline.adversarial`) for each of :data:`ADVERSARIAL_CASES` (a sample weight 0: an unlabelled
    sentence); :func:`adversarial_reference` computes the same step in NumPy from the
    random start the step drew."""
    from pipeline.adversarial import XI, adversarial_training, random_start

    rng = np.random.default_rng(7)
    ids = rng.integers(1, 12, size=(4, 6)).astype("int32")
    ids[:, 0] = 3  # a word in every sentence: its gradient sums over the batch
    labels = rng.integers(0, 3, size=4).astype("int32")
    report = {"ids": ids.tolist(), "labels": labels.tolist(), "xi": XI, "seed": 5,
              "random_start": plain(random_start((12, 5), 5, 0))}
    for case, (epsilon, virtual, trainable, weights) in ADVERSARIAL_CASES.items():
        inputs = keras.Input((None,), dtype="int32")
        embed = keras.layers.Embedding(12, 5, name="embedding", trainable=trainable)
        outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling1D()(embed(inputs)))
        model = keras.Model(inputs, outputs)
        random_weights(model, seed=8, scale=0.8)
        initial = model.get_weights()
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy")
        adversarial_training(model, embed.embeddings, epsilon, virtual, seed=report["seed"])
        logs = model.train_on_batch(ids, labels, sample_weight=np.array(weights, "float32"), return_dict=True)
        report[case] = {"initial": [plain(w) for w in initial], "after": [plain(w) for w in model.get_weights()],
                        "loss": float(logs["loss"])}
    return report


def adversarial_reference(report: dict, case: str) -> tuple[float, list[np.ndarray]]:
    """NumPy's clean loss and weights ``[E, W, b]`` after the step :func:`adversarial` takes, from the math:
    ``g = dL/dE`` at ``E``, ``r_w = epsilon * |E_w| * g_w / |g_w|``; VAT: ``p = f(E)`` fixed,
    ``d_w = xi * |E_w| * u_w / |u_w|`` (``u`` the step's random start), ``g_v = dKL(p || f(E + d))/dE`` at ``E + d``,
    ``r_v`` as ``r`` from ``g_v``; every weight moves by minus the gradient of ``L(E) + L(E + r) + KL(p || f(E +
    r_v))`` (``r``, ``r_v``, ``p`` constant), where ``L`` is the weighted cross-entropy over the batch, and with VAT
    over its labelled rows (weight > 0) only; a frozen ``E`` stays."""
    epsilon, virtual, trainable, weights = ADVERSARIAL_CASES[case]
    ids, labels = np.asarray(report["ids"]), np.asarray(report["labels"])
    matrix, kernel, bias = (np.asarray(w, np.float64) for w in report[case]["initial"])
    batch, steps = ids.shape
    weight = np.asarray(weights, np.float64)
    rows = max(int((weight > 0).sum()), 1) if virtual else batch  # what the supervised sum is divided by

    def forward(vectors):
        hidden = vectors[ids].mean(axis=1)  # (batch, dim)
        logits = hidden @ kernel + bias
        q = np.exp(logits - logits.max(axis=1, keepdims=True))
        return hidden, q / q.sum(axis=1, keepdims=True)

    def gradients(vectors, d_logits):
        """dE, dW, db of a loss whose gradient on the logits is ``d_logits`` ``(batch, classes)``."""
        hidden, _ = forward(vectors)
        d_vectors = np.zeros_like(vectors)
        np.add.at(d_vectors, ids, np.repeat((d_logits @ kernel.T)[:, None, :] / steps, steps, axis=1))
        return [d_vectors, hidden.T @ d_logits, d_logits.sum(axis=0)]

    def move(gradient, radius):
        steepness = np.linalg.norm(gradient, axis=1, keepdims=True)
        return radius * np.linalg.norm(matrix, axis=1, keepdims=True) * gradient / np.maximum(steepness, 1e-12)

    def supervised(vectors):  # cross-entropy, each sample weighted, divided by `rows`
        _, q = forward(vectors)
        return gradients(vectors, weight[:, None] * (q - np.eye(3)[labels]) / rows)

    _, p = forward(matrix)
    loss = -(weight * np.log(p[np.arange(batch), labels])).mean()  # the logs': Keras' mean over the batch
    total = supervised(matrix)
    if epsilon:
        total = [a + b for a, b in zip(total, supervised(matrix + move(supervised(matrix)[0], epsilon)))]
    if virtual:
        def divergence_gradients(vectors):  # of the mean KL(p || f(vectors)): (q - p) / batch on the logits
            return gradients(vectors, (forward(vectors)[1] - p) / batch)

        start = move(np.asarray(report["random_start"]), report["xi"])
        toward = move(divergence_gradients(matrix + start)[0], virtual)
        total = [a + b for a, b in zip(total, divergence_gradients(matrix + toward))]
    moved = matrix - total[0] if trainable else matrix
    return loss, [moved, kernel - total[1], bias - total[2]]


CHECKS = {check.__name__: check for check in (adaptive_softmax, weight_drop, regularization, char_encoder, lsm,
                                              generator, classifier, adversarial)}


def results(names=tuple(CHECKS)) -> dict:
    """``{"backend": ..., name: what check ``name`` computed}`` for the named checks, in this process."""
    return {"backend": keras.backend.backend(), **{name: CHECKS[name]() for name in names}}


def main() -> None:
    """Print :func:`results` of the checks named on the command line (all by default) as one JSON line."""
    print(json.dumps(results(tuple(sys.argv[1:]) or tuple(CHECKS))))


if __name__ == "__main__":
    main()
