"""Listing a folder of files laid out one sub-folder per category (``root/<label>/<file>``).

TextSet and ImageSet both read this layout; they share the listing and its errors, so an empty
folder or a folder without the expected files is reported the same way by both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbench.data.readers import MissingPathError

__all__ = ["FolderListing", "list_files"]


@dataclass(frozen=True)
class FolderListing:
    """Files found under a folder, in a stable order (category, then file name).

    Attributes:
        paths: absolute file paths.
        labels: the index of each file's category in ``classes``; None when unlabeled.
        classes: the category names (sub-folder names, sorted); empty when unlabeled.
    """

    paths: list[str]
    labels: list[int] | None
    classes: list[str]


def list_files(root: str | os.PathLike, extensions: tuple[str, ...], *, labeled: bool, reader: str) -> FolderListing:
    """The files under ``root`` whose suffix is in ``extensions`` (case-insensitive).

    With ``labeled=True`` each direct sub-folder of ``root`` is a category and its files (searched
    recursively) are that category's examples; files lying directly in ``root`` are then an error
    (they would have no label). With ``labeled=False`` every matching file under ``root`` is taken.
    Hidden files and folders (names starting with ".") are skipped, as file browsers do.

    Raises:
        MissingPathError: ``root`` does not exist or is not a folder.
        ValueError: no matching file, a category without files, or unlabeled files in a labeled root.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise MissingPathError(f"{reader}: {str(root)!r} is not an existing folder")
    suffixes = tuple(s.lower() for s in extensions)

    def matching(directory: Path) -> list[str]:
        return sorted(
            str(path.resolve())
            for path in directory.rglob("*")
            if path.is_file() and path.suffix.lower() in suffixes
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        )

    if not labeled:
        paths = matching(folder)
        if not paths:
            raise ValueError(f"{reader}: no {'/'.join(suffixes)} file under {str(root)!r}")
        return FolderListing(paths, None, [])

    loose = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if loose:
        raise ValueError(
            f"{reader}: {str(root)!r} holds files outside any category sub-folder ({sorted(loose)[:5]}); "
            "move them into a sub-folder per label, or read with labeled=False"
        )
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{reader}: {str(root)!r} has no category sub-folders (expected root/<label>/<file>)")
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = matching(folder / name)
        if not found:
            raise ValueError(f"{reader}: category folder {str(folder / name)!r} holds no {'/'.join(suffixes)} file")
        paths += found
        labels += [index] * len(found)
    return FolderListing(paths, labels, classes)
