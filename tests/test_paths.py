"""Tests of pipeline.paths: where JAX keeps its compiled programs (the artifact paths are tested with the stages)."""

from pipeline.paths import JAX_CACHE_BYTES, keep_jax_programs, user_cache_dir


def test_the_user_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / "pipeline"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "pipeline"


def test_jax_keeps_its_programs_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    environment = {"KERAS_BACKEND": "jax"}
    keep_jax_programs(environment)
    assert environment == {"KERAS_BACKEND": "jax", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "pipeline" / "jax"),
                           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
                           "JAX_COMPILATION_CACHE_MAX_SIZE": str(JAX_CACHE_BYTES)}
    assert (tmp_path / "pipeline" / "jax").is_dir()


def test_the_users_own_jax_settings_win(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    environment = {"KERAS_BACKEND": "jax", "JAX_COMPILATION_CACHE_DIR": "/elsewhere",
                   "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "5"}
    keep_jax_programs(environment)
    assert environment["JAX_COMPILATION_CACHE_DIR"] == "/elsewhere"
    assert environment["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "5"
    assert not (tmp_path / "pipeline").exists()


def test_nothing_is_set_or_made_on_tensorflow_or_without_a_writable_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for environment in ({}, {"KERAS_BACKEND": "tensorflow"}):
        keep_jax_programs(environment)
        assert "JAX_COMPILATION_CACHE_DIR" not in environment
    assert not (tmp_path / "pipeline").exists()
    (tmp_path / "file").write_text("")  # a file where the cache folder's parent should be: mkdir fails
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    environment = {"KERAS_BACKEND": "jax"}
    keep_jax_programs(environment)
    assert environment == {"KERAS_BACKEND": "jax"}
