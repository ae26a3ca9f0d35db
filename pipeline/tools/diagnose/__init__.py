"""``pipeline diagnose gradients``: the norm of dL/dh_t against the distance from the loss."""
