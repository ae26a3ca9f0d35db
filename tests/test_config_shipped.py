"""Every config shipped in configs/ loads, and the cheap ones train for one epoch.

The list is read from the folder, so a config added later is tested without touching this file.
Configs for ``pipeline run`` (those with a ``[corpus]`` or ``[model]`` table) also pass the layer
checks the CLI makes before any stage; the tools' configs (``diagnose``, ``forecast``, ``hopfield``,
``lsm``) are loaded only. :data:`ONE_EPOCH` runs every stage of a few configs in this process, one
epoch each, in a shared work folder (about 25 s of CPU): the default job of ``make run`` and the
default language model.
"""

import tomllib
from pathlib import Path

import pytest
from helpers import REPOSITORY

from pipeline import config
from pipeline.models import check_layers

SHIPPED = sorted((REPOSITORY / "configs").glob("*.toml"))
ONE_EPOCH = ("default", "generator")


def is_for_run(path: Path) -> bool:
    """Whether ``path`` is a config for ``pipeline run`` (a corpus and a model), not for a tool."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return "corpus" in data or "model" in data


def test_the_shipped_configs_are_found():
    names = {path.stem for path in SHIPPED}
    assert {"default", *ONE_EPOCH} <= names
    assert len(names) >= 10


def tool_of(path: Path) -> str | None:
    """The tool whose section a tool's config holds (``[lsm]``: ``pipeline lsm``); None for a run's config."""
    from pipeline import registry

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    owners = [name for name, tool in registry.tools().items() if set(tool.sections) & set(data)]
    assert len(owners) <= 1, f"{path.name} mixes the sections of {owners}"
    return owners[0] if owners else None


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_every_shipped_config_loads(path):
    loaded = config.load(path, owner=tool_of(path))
    assert (tool_of(path) is None) == is_for_run(path)
    assert loaded.seed >= 0 and loaded.run_name
    if is_for_run(path):
        check_layers(loaded.model)
        if loaded.corpus.path.startswith("corpora/"):  # a shipped corpus, not the user's own
            assert (REPOSITORY / loaded.corpus.path).exists(), f"{path.name}: {loaded.corpus.path} is not shipped"


def test_the_aozora_config_is_the_default_on_another_corpus():
    """configs/aozora_authors.toml says it is configs/default.toml but for [corpus]: the README's Aozora figures
    of "the default" hold only while that stays true."""
    default, aozora = (tomllib.loads((REPOSITORY / "configs" / name).read_text(encoding="utf-8"))
                       for name in ("default.toml", "aozora_authors.toml"))
    differing = {key for key in default.keys() | aozora.keys() if default.get(key) != aozora.get(key)}
    assert differing == {"corpus", "run_name"}


@pytest.fixture(scope="module")
def shared_folders(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("shipped")
    return [f'work_dir="{root / "work"}"', f'models_dir="{root / "models"}"',
            f'corpus.path="{REPOSITORY / "corpora" / "knb_blog"}"']


@pytest.mark.slow
@pytest.mark.parametrize("name", ONE_EPOCH)
def test_cheap_shipped_configs_run_every_stage_for_one_epoch(name, shared_folders):
    from pipeline.paths import Paths, RunPaths
    from pipeline.stages import pipeline_of, run_stage

    path = REPOSITORY / "configs" / f"{name}.toml"
    assert is_for_run(path)
    loaded = config.load(path, [*shared_folders, "train.epochs=1", "train.tensorboard=false"])
    for stage in pipeline_of(loaded):
        run_stage(stage, loaded, upstream=False)
    run = RunPaths(Paths.from_config(loaded).run)
    assert run.model.is_file() and run.metrics.is_file()
    if name == "default":  # ja_ginza's words no training sentence holds (vectorize.vector_words) stay out of training
        import keras
        import numpy as np

        from pipeline.classifier.train import rows_reached
        from pipeline.layers.embedding import PartlyFrozenEmbedding
        from pipeline.runs import load_run
        from pipeline.text.vectors import EncodedSplits

        layer = load_run(run.root).model.get_layer("embedding")
        reached = rows_reached(EncodedSplits.load(Paths.from_config(loaded).ids).sequences["train"], layer.input_dim)
        assert isinstance(layer, PartlyFrozenEmbedding) and layer.trainable_rows == len(reached) < layer.input_dim
        slots = keras.ops.convert_to_numpy(layer.slots)
        np.testing.assert_array_equal(np.flatnonzero(slots >= 0), reached)
