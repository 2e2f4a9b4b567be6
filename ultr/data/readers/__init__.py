"""Readers for real click-log formats. Each converts its raw files into the one click-log schema
(`ultr.data.schema.CLICK_LOG_COLUMNS` + kept extras) as Parquet parts, chunk by chunk so memory
stays bounded, counting or quarantining what it cannot place."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ultr.data.readers.baidu import convert_baidu
from ultr.data.readers.common import ReaderPolicy
from ultr.data.readers.pyclick import convert_pyclick
from ultr.data.readers.yandex import convert_yandex
from ultr.errors import DataError

CONVERTERS = {"baidu": convert_baidu, "yandex": convert_yandex, "pyclick": convert_pyclick}


def convert_log(fmt: str, paths: list[Path], out_dir: Path, policy: ReaderPolicy) -> dict[str, Any]:
    if fmt not in CONVERTERS:
        raise DataError(f"log.format={fmt!r}; choose from generic, {', '.join(CONVERTERS)}")
    return CONVERTERS[fmt](paths, out_dir, policy)


__all__ = ["CONVERTERS", "ReaderPolicy", "convert_log", "Mapping"]
