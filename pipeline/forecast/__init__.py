"""The forecasting task: predict a time series one step ahead, several steps ahead and free-running.

``timeseries`` (Mackey-Glass, CSV, the ESN over the whole series), ``datasets`` (real series shipped
with statsmodels), ``windows`` (split, scaling, baselines, errors), ``windowed`` (any registry kind
over sliding windows) and ``run`` (what ``pipeline forecast`` does with a ``[forecast]`` section).
"""
