"""The single source of truth for every table the pipeline reads or writes.

Tables
------
features   one row per (query, document) of a LETOR dataset
clicks     one row per impression of a click log (simulated or real)
sessions   one row per session, fixed-length lists cut to the top-K positions (training input)
"""

from __future__ import annotations

import pyarrow as pa


FEATURES_METADATA_KEY = b"ultr.features"


def features_schema(num_features: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("query_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("label", pa.int8(), nullable=True),  # null for unlabelled documents
            pa.field("features", pa.list_(pa.float32(), num_features), nullable=False),
            pa.field("split", pa.string(), nullable=False),
        ]
    )


# Required click-log columns and the dtypes they are cast to; extra columns pass through.
CLICK_LOG_COLUMNS: dict[str, pa.DataType] = {
    "session_id": pa.int64(),
    "query_id": pa.string(),
    "doc_id": pa.string(),
    "position": pa.int16(),
    "click": pa.int8(),
}

CLICK_LOG_SCHEMA = pa.schema([pa.field(n, t, nullable=False) for n, t in CLICK_LOG_COLUMNS.items()])


def sessions_schema(list_size: int) -> pa.Schema:
    """Slot k of every list holds the document shown at position k+1; `mask` is False where none is."""
    return pa.schema(
        [
            pa.field("session_id", pa.int64(), nullable=False),
            pa.field("query_id", pa.string(), nullable=False),
            # row of the features table (or id-vocabulary index for feature-less logs); -1 = padding
            pa.field("doc_index", pa.list_(pa.int32(), list_size), nullable=False),
            pa.field("position", pa.list_(pa.int16(), list_size), nullable=False),
            pa.field("click", pa.list_(pa.int8(), list_size), nullable=False),
            pa.field("mask", pa.list_(pa.bool_(), list_size), nullable=False),
        ]
    )

