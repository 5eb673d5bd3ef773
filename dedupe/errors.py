"""Errors the CLI turns into one-line messages and documented exit codes.

Library code raises these; only `dedupe.cli` decides how to show them.
"""

from __future__ import annotations

from .model import BadRecord

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_DATAERR = 65
EXIT_NOINPUT = 66
EXIT_IOERR = 74
EXIT_TEMPFAIL = 75


class DedupeError(Exception):
    """Base class: an error with a message fit for a user and an exit code."""

    exit_code = EXIT_ERROR


class NoInputError(DedupeError):
    """An input path does not exist or holds no readable documents."""

    exit_code = EXIT_NOINPUT


class BadRecordError(DedupeError):
    """A bad record met under `--strict`."""

    exit_code = EXIT_DATAERR

    def __init__(self, record: BadRecord) -> None:
        super().__init__(str(record))
        self.record = record


class OutputError(DedupeError):
    """An output could not be written (no space left, no permission, a read-only disk): exit 74
    (EX_IOERR). The output is left as it was, as after any failed run."""

    exit_code = EXIT_IOERR


class RemovalRefused(DedupeError):
    """The `--max-removed` guard refused to write the output."""

    exit_code = EXIT_REFUSED
