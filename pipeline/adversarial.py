"""Adversarial training on the word vectors (Miyato, Dai & Goodfellow 2017, "Adversarial training methods for
semi-supervised text classification"; the fast gradient method of Goodfellow et al. 2015 applied to embeddings).

Each training step adds to the loss on a batch the loss on the same batch read with the word vectors moved a little
in the direction that raises that loss most::

    r_w   = epsilon * ||E_w|| * g_w / ||g_w||          g = d loss(E) / dE, row w of the embedding matrix E
    loss  = loss(E) + loss(E + r)                       r held constant (no gradient through r)

Only the rows of the words in the batch get a gradient, so only those move; each moves by ``epsilon`` times its own
length (a scale-free radius: the same ``train.adversarial`` suits the ``ja_ginza`` vectors and a random start).
Miyato et al. normalise the perturbation over a whole sentence's embedded sequence ``(timesteps, dim)``; moving each
word type of the batch is the same idea on the weight matrix, which needs no change to the model's graph (the
saved model, export and serving stay as they are). Dropout draws the same masks in both passes.

The model learns to keep its prediction when every word it reads is replaced by a nearby worst-case vector: a
smoothness the word vectors alone do not give, and the regulariser that let an LSTM reach the best published
error rates on IMDB, Elec and RCV1 in that paper. Its cost is about 2.5 passes of the network per step instead of
one: the gradient at ``E``, then the forward and backward pass at ``E + r``.

Hooked into the trainers without subclassing the functional model (:func:`pipeline.keras_compat.wrap_steps`'s
approach): on JAX the model's ``compute_loss_and_updates`` (the stateless loss the JAX trainer differentiates), on
TensorFlow its ``train_step``. The logged training loss stays the clean loss on both backends.
"""

from __future__ import annotations

import keras

TINY = 1e-12


def perturbation(matrix, gradient, epsilon: float):
    """``r`` ``(rows, dim)``: each row of ``matrix`` moved by ``epsilon`` times its length along its ``gradient`` row
    (rows with a zero gradient, the words outside the batch, stay where they are)."""
    ops = keras.ops
    length = ops.sqrt(ops.sum(ops.square(matrix), axis=-1, keepdims=True))
    steepness = ops.sqrt(ops.sum(ops.square(gradient), axis=-1, keepdims=True))
    return epsilon * length * gradient / ops.maximum(steepness, TINY)


def adversarial_training(model: keras.Model, variable: keras.Variable, epsilon: float) -> None:
    """Make every training step of ``model`` (compiled, not yet fitted) add the adversarial loss on ``variable``
    (the embedding matrix ``(rows, dim)``, trainable or not) with radius ``epsilon`` (> 0)."""
    backend = keras.backend.backend()
    if backend == "jax":
        _on_jax(model, variable, epsilon)
    elif backend == "tensorflow":
        _on_tensorflow(model, variable, epsilon)
    else:
        raise NotImplementedError(f"adversarial training on the {backend} backend")


def _on_jax(model: keras.Model, variable: keras.Variable, epsilon: float) -> None:
    import jax

    trainable = any(v is variable for v in model.trainable_variables)
    group = model.trainable_variables if trainable else model.non_trainable_variables
    index = next(i for i, v in enumerate(group) if v is variable)
    clean = model.compute_loss_and_updates  # bound: the trainer's own

    def compute_loss_and_updates(trainable_variables, non_trainable_variables, metrics_variables, x, y,
                                 sample_weight, training=False, optimizer_variables=None):
        result = clean(trainable_variables, non_trainable_variables, metrics_variables, x, y, sample_weight,
                       training=training, optimizer_variables=optimizer_variables)
        if not training:
            return result
        state = [list(trainable_variables), list(non_trainable_variables)]
        slot = 0 if trainable else 1
        matrix = jax.lax.stop_gradient(state[slot][index])

        def loss_at(values):
            moved = [list(s) for s in state]
            moved[slot][index] = values
            return clean(*moved, metrics_variables, x, y, sample_weight, training=True,
                         optimizer_variables=optimizer_variables)[0]

        gradient = jax.lax.stop_gradient(jax.grad(loss_at)(matrix))
        r = jax.lax.stop_gradient(perturbation(matrix, gradient, epsilon))
        moved = [list(s) for s in state]
        moved[slot][index] = state[slot][index] + r
        adversarial = clean(*moved, metrics_variables, x, y, sample_weight, training=True,
                            optimizer_variables=optimizer_variables)[0]
        loss, aux = result
        return loss + adversarial, aux  # aux holds the clean loss the logs show

    model.compute_loss_and_updates = compute_loss_and_updates


def _on_tensorflow(model: keras.Model, variable: keras.Variable, epsilon: float) -> None:
    import tensorflow as tf
    from keras.src.trainers.data_adapters import data_adapter_utils

    def train_step(data):
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(variable.value)  # a frozen embedding too
            y_pred = model(x, training=True)
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            with tape.stop_recording():
                gradient = tf.convert_to_tensor(tape.gradient(loss, variable.value))  # rows read -> dense
                r = perturbation(tf.convert_to_tensor(variable.value), gradient, epsilon)
                variable.assign_add(r)
            adversarial = model._compute_loss(x=x, y=y, y_pred=model(x, training=True), sample_weight=sample_weight,
                                              training=True)
            total = model.optimizer.scale_loss(loss + adversarial)
        gradients = tape.gradient(total, model.trainable_weights)  # each read of the embedding: at E, at E + r
        del tape
        variable.assign_sub(r)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        model._loss_tracker.update_state(loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    model.train_step = train_step
