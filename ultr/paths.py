"""Where things are: the packaged configs and embedded data, and user paths.

Relative user paths resolve against the current directory only (a path that silently fell back to
the package's own folder could pick up the embedded data instead of the user's). The embedded
dataset is named explicitly: `embedded:mq2008`."""

from __future__ import annotations

from pathlib import Path

from ultr.errors import DataError

# In a source checkout these are links to the top-level conf/ and data/; a wheel holds copies.
RESOURCES = Path(__file__).resolve().parent / "resources"
CONF_DIR = RESOURCES / "conf"
EMBEDDED = "embedded:"


def resolve(path: str | Path) -> Path:
    """`embedded:<name>` -> the packaged dataset; absolute paths as they are; others under the cwd."""
    text = str(path)
    if text.startswith(EMBEDDED):
        return RESOURCES / "data" / text[len(EMBEDDED):]
    p = Path(text).expanduser()
    return p if p.is_absolute() else Path.cwd() / p


def existing(path: str | Path, what: str) -> Path:
    """`resolve(path)`, or a one-line error naming where it looked (and where a file of that name
    does exist, when the path was meant relative to the package rather than the cwd)."""
    p = resolve(path)
    if p.exists():
        return p
    if Path(str(path)).expanduser().is_absolute() or str(path).startswith(EMBEDDED):
        raise DataError(f"{what} {str(path)!r} not found; fix the path")
    parts = Path(str(path)).parts
    if len(parts) > 1 and parts[0] == "data" and (RESOURCES / "data" / parts[1]).exists():
        hint = f"; the embedded dataset is {EMBEDDED}{parts[1]}"
    else:
        elsewhere = next((c for c in (RESOURCES / str(path), RESOURCES.parent.parent / str(path)) if c.exists()), None)
        hint = f"; a file of that name is at {elsewhere}, pass that path" if elsewhere else ""
    raise DataError(f"{what} {str(path)!r} not found: looked for {p} (relative paths resolve against the current "
                    f"directory, {Path.cwd()}){hint}")
