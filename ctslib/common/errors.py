"""One error type for bad input, naming the file, row and column at fault."""

from __future__ import annotations

import os
from pathlib import Path


def shown_path(file: str) -> str:
    """``file`` as a person finds it: through a link (a run's ``<work>/input_data``), the linked folder's path.

    A stage reaches a user's data folder through the work folder's link (``ctslib.report.runner.data_parameter``);
    an error naming ``.../work/<run>/input_data/acquisition.json`` would send the user to a folder they
    never made. Paths without a link in them are shown as given.
    """
    path = Path(file)
    try:
        linked = any(p.is_symlink() for p in (path, *path.parents))
    except OSError:
        return file
    return os.path.realpath(path) if linked else file


class InputError(ValueError):
    """Bad user input. The message names the file and, where known, the row and column.

    The message shows the file by ``shown_path`` (a linked data folder's own path); ``file`` keeps
    the path as given.

    Rows are 1-based data rows as a person counts them in a spreadsheet (header excluded),
    so ``row=3`` is the third participant line of a CSV.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.row = row
        self.column = column
        self.reason = message
        where = []
        if self.file:
            where.append(shown_path(self.file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __reduce__(self):
        """Pickle by the constructor's arguments: the error survives a worker process (``ctslib.common.parallel``)."""
        return _input_error, (self.reason, self.file, self.row, self.column)


def _input_error(reason: str, file: str | None, row: int | None, column: str | None) -> InputError:
    return InputError(reason, file=file, row=row, column=column)


class StageError(RuntimeError):
    """A stage cannot run: its inputs are missing or a study rule refuses the data."""
