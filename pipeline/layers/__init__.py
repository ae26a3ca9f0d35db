"""Our own Keras layers: the Elman simple RNN and the Echo State Network."""
