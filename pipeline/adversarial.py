"""Adversarial and virtual adversarial training on the word vectors (Miyato, Dai & Goodfellow 2017, "Adversarial
training methods for semi-supervised text classification"; the fast gradient method of Goodfellow et al. 2015 and
the virtual adversarial training of Miyato et al. 2018, applied to embeddings).

Adversarial training (``train.adversarial``, radius ``epsilon``) adds to the loss on a batch the loss on the same
batch read with the word vectors moved a little in the direction that raises that loss most::

    r_w   = epsilon * ||E_w|| * g_w / ||g_w||          g = d loss(E) / dE, row w of the embedding matrix E
    loss  = loss(E) + loss(E + r)                       r held constant (no gradient through r)

Virtual adversarial training (``train.virtual_adversarial``, radius ``epsilon_v``) needs no label: it adds the
divergence of the model's prediction ``p = f(x; E)`` (held constant) from its prediction at the vectors moved in
the direction that changes it most, found by one power iteration from a random start ``d`` (rows of length
``XI * ||E_w||``)::

    g     = d KL(p || f(x; E + d)) / dE                 (the Hessian of the divergence times d, to first order)
    loss += KL(p || f(x; E + r_v))                      r_v = epsilon_v * ||E_w|| * g_w / ||g_w||

so it also reads sentences without labels (``corpus.unlabeled_path``: they join the batches with no weight in
the supervised loss, which is then the mean over the labelled rows: :func:`labelled_scale`) and makes the model's
output smooth around them, the semi-supervised use in that paper.

Only the rows of the words in the batch get a gradient, so only those move; each moves by ``epsilon`` times its own
length (a scale-free radius: the same value suits the ``ja_ginza`` vectors and a random start). Miyato et al.
normalise the perturbation over a whole sentence's embedded sequence ``(timesteps, dim)``; moving each word type of
the batch is the same idea on the weight matrix, which needs no change to the model's graph (the saved model,
export and serving stay as they are). On JAX dropout draws the same masks in every pass of a step.

Cost: an Aozora epoch of adversarial training takes 1.6 times as long on JAX (XLA shares the clean forward pass);
a step of virtual adversarial training costs about as much (one more forward and backward pass, one more forward).

Hooked into the trainers without subclassing the functional model (:func:`pipeline.keras_compat.wrap_steps`'s
approach): on JAX the model's ``compute_loss_and_updates`` (the stateless loss the JAX trainer differentiates), on
TensorFlow its ``train_step``. The logged training loss stays the clean loss on both backends. Both rely on Keras 3
trainer internals (the JAX trainer's ``compute_loss_and_updates``; the TensorFlow trainer's ``_compute_loss`` and
``_loss_tracker``); tests/test_adversarial.py and tests/test_backends.py check each step against NumPy's, so a Keras
that changes them fails there. Classifiers train in float32, so no loss scaling enters the sum.
"""

from __future__ import annotations

import keras

TINY = 1e-12
XI = 1e-2  # VAT's random start, a fraction of each row's length (its finite-difference step)
PROBABILITY_FLOOR = 1e-7


def perturbation(matrix, gradient, epsilon: float):
    """``r`` ``(rows, dim)``: each row of ``matrix`` moved by ``epsilon`` times its length along its ``gradient`` row
    (rows with a zero gradient, the words outside the batch, stay where they are)."""
    ops = keras.ops
    length = ops.sqrt(ops.sum(ops.square(matrix), axis=-1, keepdims=True))
    steepness = ops.sqrt(ops.sum(ops.square(gradient), axis=-1, keepdims=True))
    return epsilon * length * gradient / ops.maximum(steepness, TINY)


def divergence(p, q):
    """Mean over the batch of ``KL(p || q)``, ``p`` and ``q`` ``(batch, classes)`` probabilities."""
    ops = keras.ops
    p = ops.clip(p, PROBABILITY_FLOOR, 1.0)
    return ops.mean(ops.sum(p * (ops.log(p) - ops.log(ops.clip(q, PROBABILITY_FLOOR, 1.0))), axis=-1))


def labelled_scale(sample_weight):
    """``rows / labelled rows`` of a batch whose unlabeled rows weigh 0 (VAT's): Keras averages a weighted loss
    over every row, so this factor makes the supervised loss the mean over the labelled rows alone, as if the
    unlabeled ones were a batch of their own (Miyato et al. feed the two apart); 1 without weights."""
    if sample_weight is None:
        return 1.0
    ops = keras.ops
    labelled = ops.sum(ops.cast(ops.greater(sample_weight, 0), "float32"))
    return ops.cast(ops.shape(sample_weight)[0], "float32") / ops.maximum(labelled, 1.0)


def random_start(shape, seed: int, step):
    """VAT's random directions ``shape`` ``(rows, dim)``, standard normal, drawn from ``seed`` and the optimizer's
    ``step`` alone (a backend's stateless generator): the same in any process, a new draw every step."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.random.normal(jax.random.fold_in(jax.random.key(seed), step), shape)
    import tensorflow as tf

    step = tf.cast(tf.convert_to_tensor(step), tf.int64)
    return tf.random.stateless_normal(shape, seed=tf.stack([tf.constant(seed, tf.int64), step]))


def adversarial_training(model: keras.Model, variable: keras.Variable, epsilon: float = 0.0, virtual: float = 0.0,
                         seed: int = 0) -> None:
    """Make every training step of ``model`` (compiled, not yet fitted) add the adversarial loss on ``variable``
    (the embedding matrix ``(rows, dim)``, trainable or not) with radius ``epsilon``, and the virtual adversarial
    one with radius ``virtual`` (each 0: off; ``seed`` draws VAT's random start, step by step)."""
    backend = keras.backend.backend()
    if backend == "jax":
        _on_jax(model, variable, epsilon, virtual, seed)
    elif backend == "tensorflow":
        _on_tensorflow(model, variable, epsilon, virtual, seed)
    else:
        raise NotImplementedError(f"adversarial training on the {backend} backend")


def _iteration_slot(model: keras.Model) -> int:
    return next(i for i, v in enumerate(model.optimizer.variables) if v is model.optimizer.iterations)


def _on_jax(model: keras.Model, variable: keras.Variable, epsilon: float, virtual: float, seed: int) -> None:
    import jax

    trainable = any(v is variable for v in model.trainable_variables)
    group = model.trainable_variables if trainable else model.non_trainable_variables
    index, slot = next(i for i, v in enumerate(group) if v is variable), 0 if trainable else 1
    iteration = _iteration_slot(model) if virtual else None
    clean = model.compute_loss_and_updates  # bound: the trainer's own
    stop = jax.lax.stop_gradient

    def compute_loss_and_updates(trainable_variables, non_trainable_variables, metrics_variables, x, y,
                                 sample_weight, training=False, optimizer_variables=None):
        result = clean(trainable_variables, non_trainable_variables, metrics_variables, x, y, sample_weight,
                       training=training, optimizer_variables=optimizer_variables)
        if not training:
            return result
        state = [list(trainable_variables), list(non_trainable_variables)]
        matrix = state[slot][index]

        def at(values):
            """(loss, probabilities) with the embedding matrix replaced by ``values``."""
            moved = [list(s) for s in state]
            moved[slot][index] = values
            loss, aux = clean(*moved, metrics_variables, x, y, sample_weight, training=True,
                              optimizer_variables=optimizer_variables)
            return loss, aux[1]

        loss, aux = result
        total, fixed = loss, stop(matrix)
        if epsilon:
            gradient = stop(jax.grad(lambda values: at(values)[0])(fixed))
            total = total + at(matrix + stop(perturbation(fixed, gradient, epsilon)))[0]
        if virtual:
            total = total * labelled_scale(sample_weight)
            p = stop(aux[1])
            start = perturbation(fixed, random_start(fixed.shape, seed, optimizer_variables[iteration]), XI)
            gradient = stop(jax.grad(lambda values: divergence(p, at(values)[1]))(fixed + start))
            total = total + divergence(p, at(matrix + stop(perturbation(fixed, gradient, virtual)))[1])
        return total, aux  # aux holds the clean loss the logs show

    model.compute_loss_and_updates = compute_loss_and_updates


def _on_tensorflow(model: keras.Model, variable: keras.Variable, epsilon: float, virtual: float, seed: int) -> None:
    import tensorflow as tf

    def train_step(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        moves = []  # what was added to the embedding, taken back after the gradients

        def move(r):
            variable.assign_add(r)
            moves.append(r)

        with tf.GradientTape(persistent=True) as tape:
            tape.watch(variable.value)  # a frozen embedding too
            y_pred = model(x, training=True)
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            total = loss
            fixed = tf.stop_gradient(tf.convert_to_tensor(variable.value))
            if epsilon:
                with tape.stop_recording():
                    gradient = tf.convert_to_tensor(tape.gradient(loss, variable.value))  # rows read -> dense
                    move(perturbation(fixed, gradient, epsilon))
                total += model._compute_loss(x=x, y=y, y_pred=model(x, training=True), sample_weight=sample_weight,
                                             training=True)
            if virtual:
                total *= labelled_scale(sample_weight)
                p = tf.stop_gradient(y_pred)
                with tape.stop_recording():
                    if moves:  # back to E
                        variable.assign_sub(moves.pop())
                    start = perturbation(fixed, random_start(fixed.shape, seed, model.optimizer.iterations), XI)
                    variable.assign_add(start)
                    with tf.GradientTape() as inner:
                        inner.watch(variable.value)
                        near = divergence(p, model(x, training=True))
                    gradient = tf.convert_to_tensor(inner.gradient(near, variable.value))
                    variable.assign_sub(start)
                    move(perturbation(fixed, gradient, virtual))
                total += divergence(p, model(x, training=True))
            total = model.optimizer.scale_loss(total)
        gradients = tape.gradient(total, model.trainable_weights)  # each read of the embedding at its own value
        del tape
        for r in moves:
            variable.assign_sub(r)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        model._loss_tracker.update_state(loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    model.train_step = train_step
