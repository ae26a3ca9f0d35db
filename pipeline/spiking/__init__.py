"""Liquid State Machine tasks: spike-timing classification and rate-coded forecasting, beside the ESN."""
