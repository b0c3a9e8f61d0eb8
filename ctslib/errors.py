"""One error type for bad input, naming the file, row and column at fault."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input. The message names the file and, where known, the row and column.

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
            where.append(self.file)
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __reduce__(self):
        """Pickle by the constructor's arguments: the error survives a worker process (``ctslib.parallel``)."""
        return _input_error, (self.reason, self.file, self.row, self.column)


def _input_error(reason: str, file: str | None, row: int | None, column: str | None) -> InputError:
    return InputError(reason, file=file, row=row, column=column)


class StageError(RuntimeError):
    """A stage cannot run: its inputs are missing or a study rule refuses the data."""
