"""What the embedded front answers for an error of its own (a pure unit: embedded/errors.py).

A full disk or no file descriptor left while the front writes a request body to a file was
UNKNOWN_EXCEPTION (1002), which the SDK and the bridge take for permanent: now ClickHouse's own
codes for them, which both retry (core/errors.py)."""

from __future__ import annotations

import errno

import pytest

from core.errors import PRODUCER_RETRYABLE_ERRORS, TRANSIENT_ERRORS, Code
from embedded.errors import unexpected


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), Code.NOT_ENOUGH_SPACE),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), Code.NOT_ENOUGH_SPACE),
        (OSError(errno.EMFILE, "Too many open files"), Code.CANNOT_OPEN_FILE),
        (OSError(errno.ENFILE, "Too many open files in system"), Code.CANNOT_OPEN_FILE),
    ],
)
def test_running_out_of_disk_or_descriptors_is_said_with_clickhouses_code_and_retried(error, code):
    answer = unexpected(error, "q-1")
    assert answer.code == code
    assert "OSError" in str(answer) and error.strerror in str(answer)
    assert code in PRODUCER_RETRYABLE_ERRORS and code in TRANSIENT_ERRORS


def test_any_other_error_of_the_front_is_unknown_and_not_retried():
    answer = unexpected(ValueError("a bug"), "q-2")
    assert answer.code == Code.UNKNOWN_EXCEPTION
    assert "ValueError: a bug" in str(answer)
    assert answer.code not in PRODUCER_RETRYABLE_ERRORS
