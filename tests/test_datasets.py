"""The standard datasets' presets on synthetic folds laid out as the downloads ship, the features
cache, and evaluation scoring over long-tailed candidate lists."""

import os
import shutil
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import ROOT
from pipelines.config import default_config
from ultr.data.batching import QueryLists
from ultr.train.build import build_steps
from ultr.train.loop import score_lists
from ultr.errors import DataError
from ultr.workflows import ingest, letor_splits

sys.path.insert(0, str(ROOT))
from benchmarks.gen_letor import generate  # noqa: E402

LAYOUT = {  # where each dataset's splits sit once unpacked
    "mslr30k": {"train": "Fold1/train.txt", "vali": "Fold1/vali.txt", "test": "Fold1/test.txt"},
    "yahoo_set1": {"train": "set1.train.txt", "vali": "set1.valid.txt", "test": "set1.test.txt"},
    "istella_s": {"train": "train.txt", "vali": "vali.txt", "test": "test.txt"},
}


def shipped_fold(tmp_path: Path, shape: str) -> Path:
    fold = generate(shape, 0.0003, tmp_path / "gen", seed=1)
    root = tmp_path / shape
    for split, rel in LAYOUT[shape].items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(fold / f"{split}.txt", root / rel)
    return root


@pytest.mark.parametrize("shape,width,sparse", [("mslr30k", 136, False), ("yahoo_set1", 700, True), ("istella_s", 220, False)])
def test_presets_ingest_their_shipped_layout(tmp_path, shape, width, sparse):
    cfg = default_config([f"data={shape}", f"data.root={shipped_fold(tmp_path, shape)}"])
    assert cfg["data"]["num_features"] == width and cfg["data"]["sparse"] is sparse
    ft = ingest(cfg["data"], tmp_path / "run", progress=False)
    assert ft.features.shape[1] == width and set(ft.splits) == {"train", "vali", "test"}
    assert ft.labels.min() == 0 and ft.labels.max() <= 4
    if cfg["data"]["normalization"] == "minmax":
        train = ft.features[ft.rows("train")]
        assert train.min() >= 0.0 and train.max() == pytest.approx(1.0)


def test_mslr10k_preset_and_missing_root():
    cfg = default_config(["data=mslr10k", "data.root=/nowhere"])
    assert cfg["data"]["name"] == "mslr10k" and cfg["data"]["num_features"] == 136 and cfg["data"]["fold"] == 1
    with pytest.raises(DataError, match=r"data.root '/nowhere' not found"):
        letor_splits(cfg["data"])
    with pytest.raises(DataError, match="data.root is not set; point it at the mslr30k dataset"):
        letor_splits(default_config(["data=mslr30k"])["data"])


def test_features_table_built_once_and_again_when_a_file_changes(tmp_path, tiny_letor):
    root = tmp_path / "ds"
    (root / "Fold1").mkdir(parents=True)
    for split, path in tiny_letor.items():
        shutil.copy(path, root / "Fold1" / f"{split}.txt")
    data = {"root": str(root), "fold": 1, "num_features": 4}
    cache = {"enabled": True}
    entries = lambda: set(Path(os.environ["ULTR_CACHE"]).glob("features-*"))  # noqa: E731
    before = entries()
    a = ingest(data, tmp_path / "a", cache=cache, progress=False)
    built = entries() - before
    assert len(built) == 1
    ingest(data, tmp_path / "b", cache=cache, progress=False)
    assert entries() - before == built  # reused
    assert os.stat(tmp_path / "b" / "features.parquet").st_ino == os.stat(next(iter(built)) / "features.parquet").st_ino
    train = root / "Fold1" / "train.txt"
    train.write_text(train.read_text().replace("2 qid:1", "1 qid:1", 1))  # one label changes
    c = ingest(data, tmp_path / "c", cache=cache, progress=False)
    assert len(entries() - before) == 2
    assert a.labels[0] == 2 and c.labels[0] == 1


def test_flat_scoring_equals_scoring_the_padded_lists():
    cfg = default_config(["model.hidden=[16,8]"])
    steps = build_steps("naive", cfg, 5, 10)
    params = steps.init(jax.random.PRNGKey(0), 64)
    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.normal(size=(300, 5)).astype(np.float32))
    lengths = np.array([1, 37, 3, 120, 9])  # long-tailed, as MSLR's
    mask = np.arange(lengths.max()) < lengths[:, None]
    doc = np.where(mask, rng.integers(0, 300, size=mask.shape), 0).astype(np.int32)
    lists = QueryLists(np.arange(5).astype(str), doc, np.zeros(mask.shape, np.float32), mask)
    flat = score_lists(steps, params.ranker, lists, features, chunk=1024)
    direct = np.asarray(steps.score(params.ranker, jnp.asarray(doc), features))
    np.testing.assert_allclose(flat[mask], direct[mask], rtol=1e-5, atol=1e-6)
    assert (flat[~mask] == 0).all()
