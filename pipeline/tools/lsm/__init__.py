"""``pipeline lsm``: Liquid State Machine tasks (spike-timing classification, rate-coded forecasting) beside the ESN."""
