"""Scores of a ranker for document rows and for padded candidate lists, in blocks of one compiled
shape: the training loop's validation, the experiment's evaluation and the API use these."""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ultr.data.batching import QueryLists
from ultr.train.steps import Steps


def score_lists(steps: Steps, ranker_params: Any, lists: QueryLists, features: jax.Array | None, chunk: int = 1 << 14,
                progress: str | None = None) -> np.ndarray:
    """Scores [Q, L] for every candidate of every list. The valid documents are scored flat (see
    `score_rows`) and scattered back: the padding of the [Q, L] layout (long-tailed list lengths pad
    MSLR-WEB30K's lists about 10x) costs nothing. Padding slots score 0. `progress` names a progress
    bar over the documents (none by default)."""
    scores = np.zeros(lists.doc_index.shape, dtype=np.float32)
    scores[lists.mask] = score_rows(steps, ranker_params, lists.doc_index[lists.mask], features, chunk, progress)
    return scores


def score_rows(steps: Steps, ranker_params: Any, rows: np.ndarray, features: jax.Array | None, chunk: int = 1 << 14,
               progress: str | None = None) -> np.ndarray:
    """Scores [N] of document rows [N], in blocks of one compiled shape (the last one padded)."""
    rows = np.asarray(rows)
    block = min(chunk, max(1024, 1 << max(0, int(rows.size - 1).bit_length())))
    padded = np.zeros(-(-max(rows.size, 1) // block) * block, dtype=np.int32)
    padded[: rows.size] = rows
    flat = np.empty(padded.size, dtype=np.float32)
    bar = tqdm(total=rows.size, unit="doc", unit_scale=True, desc=progress, disable=progress is None, file=sys.stderr,
               mininterval=1.0, dynamic_ncols=True)
    for i in range(0, padded.size, block):
        bar.update(min(block, rows.size - i))
        idx = jnp.asarray(padded[i : i + block].reshape(-1, 128))
        flat[i : i + block] = np.asarray(steps.score(ranker_params, idx, features), dtype=np.float32).reshape(-1)
    bar.close()
    return flat[: rows.size]
