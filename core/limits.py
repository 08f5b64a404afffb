"""The process's open-files limit, raised to what the system allows (as a ClickHouse server does).

Every connection, part file and pipe the servers hold is a file descriptor; a shell's default soft
limit (often 1,024, or 256) ran out under ordinary load: the HTTP front dropped connections
without a word, chDB failed queries and inserts ("Cannot open file", "Cannot create pipe"), and
the gRPC service could not reach ClickHouse until it was restarted. The hard limit is the
administrator's, and stays.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; the limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        log.warning("could not raise the open files limit from %d to %d: %s", soft, hard, error)
        return soft
    return hard
