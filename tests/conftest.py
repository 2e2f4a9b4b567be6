from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
EMBEDDED_MQ2008 = ROOT / "data" / "mq2008"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Experiments share simulated data through a cache; tests get their own, never the user's."""
    import os

    os.environ["ULTR_CACHE"] = str(tmp_path_factory.mktemp("ultr-cache"))


def write_letor(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_letor(tmp_path: Path) -> dict[str, Path]:
    """3 train queries, 2 vali, 2 test; 4 features; labels 0-2 (hand-checkable)."""
    train = write_letor(tmp_path / "train.txt", [
        "2 qid:1 1:1.0 2:0.5 4:3 #docid = a1",
        "0 qid:1 1:0.0 3:1.0 #docid = a2",
        "1 qid:1 2:2.0 #docid = a3",
        "0 qid:2 1:0.2 #docid = b1",
        "1 qid:2 1:0.8 4:1 #docid = b2",
        "0 qid:3 3:0.3 #docid = c1",
        "2 qid:3 1:0.9 2:0.1 #docid = c2",
    ])
    vali = write_letor(tmp_path / "vali.txt", [
        "1 qid:4 1:0.5 #docid = d1",
        "0 qid:4 2:0.5 #docid = d2",
        "0 qid:5 1:0.1 #docid = e1",
    ])
    test = write_letor(tmp_path / "test.txt", [
        "2 qid:6 1:0.7 #docid = f1",
        "0 qid:6 1:0.1 #docid = f2",
        "1 qid:6 1:0.3 #docid = f3",
        "0 qid:7 1:0.2 #docid = g1",
    ])
    return {"train": train, "vali": vali, "test": test}
