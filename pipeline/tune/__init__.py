"""``pipeline tune``: a hyperparameter search (Optuna) over a task's config, scored on the validation split.

A tool on the frame, not part of it: the frame never imports this folder. It asks the task of the
config for its search space (:attr:`pipeline.registry.Task.search_space`), trains each trial through
the frame's ``train`` stage (:func:`pipeline.stages.run_stage`) on a copy of the vectorized corpus
without its test split, and writes the best config, a table of trials and a plot of the search to a
run folder of kind ``tune`` (:func:`pipeline.workarea.new_run`).

* :mod:`.plugin`: the ``[tune]`` section and the tool's registration (light: no Optuna, no Keras);
* :mod:`.space`: parameters (config keys and distributions), sampling, applying values to a config;
* :mod:`.monitor`: the Keras callback that reports the validation curve to the pruner and keeps the time limit;
* :mod:`.study`: the study (storage in the work folder, keyed by the config's fingerprint), the trials;
* :mod:`.report`: the best config as TOML, the trials as CSV, the plot.
"""
