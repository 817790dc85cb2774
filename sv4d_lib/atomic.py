"""Atomic output: write to a temporary name in the target's folder, check the result, then rename it into place.

A crash, an interrupt or a failing check leaves no partial or empty file under the final name (the temporary is
removed), and `os.replace` within one folder is atomic, so readers see either nothing or the complete file. A
group of files (one per view) is checked as a whole before any of them is renamed, so a failure in the last one
leaves none behind.

Temporary names start with "." and keep the final suffix (writers such as ffmpeg pick the container from it).
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

Check = Callable[[Path], None]  # raises (with the reason) when a written temporary is not acceptable


def temporary_name(path: str | os.PathLike) -> Path:
    """A hidden, unique sibling of `path` with the same suffix: `<dir>/.<name>.<random>.tmp<suffix>`."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def check_nonempty_file(path: Path, name: str) -> None:
    """The minimum every written file must pass: it exists and holds at least one byte (`name`: for the message)."""
    if not path.is_file() or path.stat().st_size == 0:
        raise OSError(f"writing {name} produced {'an empty file' if path.is_file() else 'no file'}")


def check_nonempty_folder(path: Path, name: str) -> None:
    """A written folder exists and holds at least one entry (`name`: for the message)."""
    if not path.is_dir() or not any(path.iterdir()):
        raise OSError(f"writing the folder {name} produced {'no entries' if path.is_dir() else 'no folder'}")


@contextmanager
def atomic_files(paths: Sequence[str | os.PathLike], check: Check | None = None) -> Iterator[list[Path]]:
    """Yield one temporary path per target; after the block, check all of them, then rename each into place.

    Every temporary must be a non-empty file, and pass `check(temporary)` if given. On any exception (in the
    block or a check) the temporaries are removed and the targets are left as they were.
    """
    targets = [Path(p) for p in paths]
    temporaries = [temporary_name(p) for p in targets]
    try:
        yield temporaries
        for temporary, target in zip(temporaries, targets):
            check_nonempty_file(temporary, target.name)
            if check is not None:
                check(temporary)
        for temporary, target in zip(temporaries, targets):
            os.replace(temporary, target)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: str | os.PathLike, check: Check | None = None) -> Iterator[Path]:
    """`atomic_files` for one file: yields its temporary path."""
    with atomic_files([path], check) as (temporary,):
        yield temporary


@contextmanager
def atomic_folder(path: str | os.PathLike, check: Check | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; after the block, check it, then rename it to `path`.

    The folder must not be empty and must pass `check(folder)` if given; `path` must not exist yet (a folder
    cannot replace a non-empty one atomically). On any exception the temporary folder and its contents are removed.
    """
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} already exists; choose another name or remove it first")
    temporary = temporary_name(target)
    temporary.mkdir()
    try:
        yield temporary
        check_nonempty_folder(temporary, target.name)
        if check is not None:
            check(temporary)
        os.rename(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
