"""An HTTP ``session_id``'s hold on its own chDB connection, between its requests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedded.engine import Connection


@dataclass
class Session:
    """An HTTP ``session_id``: its own connection, used by one request at a time."""

    session_id: str
    connection: Connection
    timeout: float
    database: str = "default"  # chosen by the session's own USE statements
    busy: bool = False
    expires_at: float = 0.0
    # The session's own value and changed-flag of the settings looked up so far (what a request's
    # URL settings are undone to). Reading system.settings costs a statement 3 ms, more than the
    # rest of a small query; the values change only by the session's own statements, so they are
    # forgotten after any statement that is not a read (a SET, SET ROLE, SET PROFILE, ALTER USER).
    own_settings: dict[str, tuple[str, bool]] = field(default_factory=dict)

    def touch(self) -> None:
        self.expires_at = time.monotonic() + self.timeout

    def own_values(self, names) -> dict[str, tuple[str, bool]]:
        """The session's own value and changed-flag of each of ``names`` that is a setting.

        Call it while no request's URL settings are in force on the connection, or only for
        names they do not set.
        """
        missing = [name for name in names if name not in self.own_settings]
        if missing:
            self.own_settings.update(self.connection.settings_snapshot(missing))
        return {name: self.own_settings[name] for name in names if name in self.own_settings}
