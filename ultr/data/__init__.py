"""Data layer: schemas, LETOR ingest, click-log ETL and batching. Never imports JAX."""
