"""The forecasting task: predict a time series one step ahead and free-running."""
