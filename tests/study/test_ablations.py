"""Named models over the schema's training defaults, trained once per settings."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cellvae.core.config import defaults  # noqa: E402
from cellvae.imaging.shards import write_shard  # noqa: E402
from cellvae.study.ablations import MODELS, THESIS, model_settings, train_model  # noqa: E402

# Keras's own TensorFlow variable conversion when saving; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_named_models_are_the_schema_defaults_with_their_overrides():
    train = defaults()["train"]
    assert model_settings("default") == train
    assert model_settings("thesis") == {**train, **THESIS}
    assert all(set(overrides) <= set(train) for overrides in MODELS.values())


@pytest.mark.slow
def test_a_named_model_is_trained_once_per_settings_and_reused(tmp_path):
    shard = tmp_path / "train.npy"
    write_shard(shard, np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8))
    messages = []
    folder = train_model("default", 2, 1, 1, shard, tmp_path, messages.append)
    assert (folder / "model.keras").is_file() and folder.parent == tmp_path / "models"
    written, trained = (folder / "model.keras").stat().st_mtime_ns, len(messages)
    assert train_model("default", 2, 1, 1, shard, tmp_path, messages.append) == folder
    assert (folder / "model.keras").stat().st_mtime_ns == written and len(messages) == trained
    other = train_model("default", 2, 1, 2, shard, tmp_path, messages.append)  # another number of epochs
    assert other != folder and (other / "model.keras").is_file()
