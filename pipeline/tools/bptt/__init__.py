"""Backpropagation through time for an Elman network in NumPy: the reference for the Keras layers."""
