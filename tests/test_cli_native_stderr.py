"""Tests of pipeline.cli.native_stderr: TensorFlow's native start-up lines never reach the user's terminal.

The unit tests check which lines count as noise and that the filter forwards everything else (in a
fresh process, since it replaces descriptor 2); the CLI test loads TensorFlow for real, classifies and
fails on one line, and finds none of absl's, cuInit's or oneDNN's lines on stderr.
"""

import subprocess
import sys

import pytest
from helpers import TENSORFLOW_NOISE, assert_user_error, cli, explain, write_classifier_run

from pipeline.cli.native_stderr import is_noise

NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796112745.298076    7049 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1796112745.298366    7049 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1796112749.258224    7049 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "E0000 00:00:1796112752.805631    7049 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512.",
    "E0000 00:00:1721910000.123456   12345 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to "
    "register factory for plugin cuDNN when one has already been registered",
    "2024-01-01 12:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.",
]
KEPT_LINES = [
    "error: tests/configs/small.toml: unknown config key 'train.epoch' (did you mean 'epochs'?)",
    "I pipeline.stages: prepare: running",
    "Traceback (most recent call last):",
    "F0000 00:00:1796112752.805631    7049 logging.cc:43] Check failed: index < size",
    "E0000 00:00:1796112752.805631    7049 gpu_util.cc:70] CUDA_ERROR_OUT_OF_MEMORY: out of memory",
]


@pytest.mark.parametrize("line", NOISE_LINES)
def test_tensorflow_start_up_lines_are_noise(line):
    assert is_noise(line)


@pytest.mark.parametrize("line", KEPT_LINES)
def test_our_lines_and_real_native_errors_are_kept(line):
    assert not is_noise(line)


FILTERED_PROCESS = """
import os, sys
from pipeline.cli.native_stderr import filter_native_stderr
filter_native_stderr()
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1796112745.298076    7049 port.cc:153] oneDNN custom operations are on.\\nnative kept\\n")
print("python kept", file=sys.stderr)
os.write(2, b"last native line without a newline")
"""


@pytest.mark.parametrize("level, filtered", [(None, True), ("2", True), ("0", False)])
def test_the_filter_drops_only_the_noise_and_loses_nothing_at_exit(level, filtered):
    import os

    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        environment["TF_CPP_MIN_LOG_LEVEL"] = level
    result = subprocess.run([sys.executable, "-c", FILTERED_PROCESS], capture_output=True, text=True, timeout=60,
                            env=environment)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert {"native kept", "python kept", "last native line without a newline"} <= set(lines), result.stderr
    assert any(TENSORFLOW_NOISE.match(line) for line in lines) is not filtered, result.stderr


def assert_no_tensorflow_noise(result: subprocess.CompletedProcess) -> None:
    noise = [line for line in result.stderr.splitlines()
             if TENSORFLOW_NOISE.match(line) or is_noise(line) or "cuInit" in line or "oneDNN" in line]
    assert noise == [], explain(result)


@pytest.mark.slow
def test_classify_and_its_errors_show_no_tensorflow_lines(tmp_path):
    run = write_classifier_run(tmp_path / "run")
    result = cli("classify", "--model", str(run), "京都の紅葉を見ました。", "")  # loads TensorFlow, then a line error
    assert result.returncode == 2, explain(result)
    assert result.stdout.split("\t")[0] in ("a", "b"), explain(result)
    assert_no_tensorflow_noise(result)
    assert "error: line 2: empty text" in result.stderr


def test_a_config_error_shows_no_tensorflow_lines():
    result = cli("run", "tests/configs/small.toml", "--set", "train.epoch=1")
    assert_user_error(result, "train.epoch")
    assert_no_tensorflow_noise(result)
