"""Tests of the gradient diagnostics: total dL/dh_t, vanishing in a simple RNN, the LSTM, the written files."""

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.tools.bptt.reference import ElmanWeights, bptt
from pipeline.tools.diagnose.gradients import (
    COLUMNS,
    build_model,
    gradient_norms,
    hidden_state_gradients,
    memory_task,
    run_gradient_diagnostics,
)


def test_hidden_gradients_are_the_total_derivative_through_the_recurrence():
    model = build_model("elman", timesteps=12, features=3, units=5, seed=4)
    inputs, targets = memory_task(4, 12, 3, rng=np.random.default_rng(0))
    measured, _ = hidden_state_gradients(model, inputs, targets)
    weights = ElmanWeights.from_list(model.get_weights())
    reference = bptt(inputs, targets, weights, loss_steps="last").hidden_gradients
    assert measured.shape == (4, 12, 5)
    np.testing.assert_allclose(measured, reference, atol=1e-5, rtol=1e-4)
    assert np.linalg.norm(measured[:, 0]) > 0  # the first state is reached only through the recurrence


def test_table_shape_and_columns():
    table = gradient_norms("gru", timesteps=10, features=2, units=3, batch_size=4)
    assert list(table.columns) == COLUMNS
    assert len(table) == 10 and set(table["phase"]) == {"initial"}
    np.testing.assert_array_equal(table["step"], np.arange(10))
    np.testing.assert_array_equal(table["distance_from_loss"], 9 - np.arange(10))
    assert (table["grad_norm"] > 0).all()


def test_simple_rnn_vanishes_and_lstm_decays_much_more_slowly():
    ratios = {}
    for architecture in ("simple_rnn", "elman", "lstm"):
        table = gradient_norms(architecture, timesteps=60, features=8, units=16, batch_size=16, seed=0)
        by_distance = table.set_index("distance_from_loss")["grad_norm"]
        ratios[architecture] = by_distance[50] / by_distance[0]
    assert ratios["simple_rnn"] < 1e-4  # orders of magnitude below distance 0
    assert ratios["elman"] == pytest.approx(ratios["simple_rnn"], rel=1e-3)  # same layer, same seed
    assert ratios["lstm"] > 100 * ratios["simple_rnn"]


def test_training_with_and_without_clipping_and_files(tmp_path):
    paths = run_gradient_diagnostics(
        ["simple_rnn", "lstm"], tmp_path / "diagnostics",
        timesteps=20, features=3, units=4, batch_size=8, train_steps=2, clipnorm=0.01, seed=1,
    )
    assert paths == {"csv": tmp_path / "diagnostics" / "gradient_norms.csv",
                     "png": tmp_path / "diagnostics" / "gradient_norms.png"}
    table = pd.read_csv(paths["csv"])
    assert list(table.columns) == COLUMNS
    assert len(table) == 2 * 3 * 20
    phases = table.groupby("architecture")["phase"].unique()
    assert all(set(value) == {"initial", "trained", "trained_clipped"} for value in phases)
    clipped = table[table["phase"] == "trained_clipped"]
    assert (clipped["clipnorm"] == 0.01).all() and (clipped["clip_scale"] < 1).all()
    assert (table[table["phase"] != "trained_clipped"]["clip_scale"] == 1).all()
    # Clipping changed the trajectory: trained weights, hence gradients, differ.
    trained = table[table["phase"] == "trained"]["grad_norm"].to_numpy()
    assert not np.allclose(trained, clipped["grad_norm"].to_numpy())
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "diagnostics").iterdir()) == ["gradient_norms.csv", "gradient_norms.png"]


def test_unknown_architecture_is_a_user_error_with_a_suggestion(tmp_path):
    with pytest.raises(PipelineError, match="Did you mean 'lstm'"):
        gradient_norms("lstn")
    with pytest.raises(PipelineError, match="timesteps"):
        gradient_norms("lstm", timesteps=0)
    with pytest.raises(PipelineError, match="unknown architecture"):
        run_gradient_diagnostics(["elman", "transformer"], tmp_path)
