"""The lecture tools, apart from the product: each a folder that declares itself to the frame (its config
section and command) and writes its run folder through the same run-safety path as the stages
(:func:`pipeline.workarea.new_run`).

* ``diagnose/``: vanishing gradients, ``||dL/dh_t||`` against the distance from the loss;
* ``bptt/``: backpropagation through time in NumPy, the reference the Keras layers are checked against;
* ``hopfield/``: glyphs stored in a Hopfield network and recalled, and the measured capacity;
* ``lsm/``: a Liquid State Machine beside an Echo State Network;
* ``neighbours/``: the nearest words by cosine similarity.
"""
