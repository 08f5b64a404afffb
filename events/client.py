"""The events client: build and validate events in the caller's thread, deliver them from a consumer thread.

Recording never blocks. Accepted events wait in a bounded queue; when it is full the newest event
is dropped and counted (`client.stats.dropped`), so a slow or unreachable sink costs events, never
the caller's latency. A consumer thread takes events off the queue and hands them to the sink in
batches, as the sink's `batching` asks: at a number of events, a number of bytes or an age of the
oldest event, whichever comes first.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from events.contract import ENVELOPE_FIELDS, InvalidEvent, parse_time, validate_message
from events.event import (
    AnalyticsCompatEvent,
    AnyEvent,
    CompatEventType,
    Event,
)
from events.pipeline import ClientStats, Clock, Pipeline
from events.sinks import Sink

ATTR_SERVICE_NAME = "service_name"
ATTR_SERVICE_VERSION = "service_version"
ATTR_SERVICE_COMMIT = "service_commit"
ATTR_IS_DEV = "is_dev"
ATTR_INSTALL_ID = "install_id"
ATTR_USER_ID = "user_id"

WorkflowEventName = Literal["created", "updated", "terminated", "deleted"]
JobEventName = Literal["created", "started", "completed", "failed", "cancelled"]
JOB_STATUS_BY_EVENT = {
    "created": "pending",
    "started": "running",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}
Timestamp = datetime | str | None


class Client:
    """Records events and sends them to a sink.

    `with_*` methods return a copy that adds attributes to every event; copies share the queue,
    the consumer and the counters, and closing any of them closes all. Use it as a context
    manager, or call `close()`, so queued events reach the sink before the program ends.

    `clock` gives event times and batch ages (seconds since the epoch). With `background=False`
    there is no consumer thread: nothing is sent until `pump()`, `flush()` or `close()` is called.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        queue_size: int = 10_000,
        clock: Clock = time.time,
        background: bool = True,
    ):
        self._pipeline = Pipeline(sink, queue_size, clock, background)
        self._attributes: dict[str, Any] = {}

    # -- context ---------------------------------------------------------------------------------
    def with_attributes(self, **attributes: Any) -> Client:
        """A copy of this client that sets these attributes on every event it records."""
        for name in attributes:
            if name in ENVELOPE_FIELDS:
                raise InvalidEvent(name, "is an envelope field and cannot be an attribute")
        clone = copy.copy(self)  # shares the pipeline
        clone._attributes = {**self._attributes, **attributes}
        return clone

    def with_service(self, name: str, version: str | None = None, commit: str | None = None) -> Client:
        attributes = {ATTR_SERVICE_NAME: name, ATTR_SERVICE_VERSION: version, ATTR_SERVICE_COMMIT: commit}
        return self.with_attributes(**{key: value for key, value in attributes.items() if value is not None})

    def with_user_id(self, user_id: str) -> Client:
        return self.with_attributes(**{ATTR_USER_ID: user_id})

    def with_install_id(self, install_id: str) -> Client:
        return self.with_attributes(**{ATTR_INSTALL_ID: install_id})

    def with_is_dev(self, is_dev: bool = True) -> Client:
        return self.with_attributes(**{ATTR_IS_DEV: is_dev})

    # -- recording -------------------------------------------------------------------------------
    def record(
        self, event_type: str, event_name: str, /, *, event_time: Timestamp = None, **attributes: Any
    ) -> Event | None:
        """Record an event with the client's attributes and these; returns it, or None if it was dropped.

        Raises InvalidEvent, naming the field, if the event breaks the contract.
        """
        merged = {**self._attributes, **attributes}  # the event's own win; a datetime becomes text in Event
        event = Event(event_type, event_name, merged, event_time=self._time(event_time))
        return self.send(event)

    def record_metric(self, name: str, value: float, /, **attributes: Any) -> Event | None:
        """Record a `metric` event carrying `value`."""
        return self.record("metric", name, value=value, **attributes)

    def record_raw(self, data: Mapping[str, Any]) -> Event | None:
        """Send an event given in its JSON form as is (no client attributes, its own id and time).

        Raises InvalidEvent naming the field if an envelope field is missing or anything is invalid.
        """
        return self.send(Event.from_dict(data))

    def send(self, event: AnyEvent) -> AnyEvent | None:
        """Validate and queue an event built elsewhere; returns it, or None if it was dropped."""
        if not isinstance(event, AnyEvent):
            raise TypeError(
                f"send() takes an Event or an AnalyticsCompatEvent, not {type(event).__name__}; "
                "an event in its JSON form (a dict) is sent with record_raw()"
            )
        _check_serializable(event)
        validate_message(event.to_dict())
        return event if self._pipeline.put(event) else None

    def record_workflow(
        self,
        event_name: WorkflowEventName,
        *,
        workflow_id: str,
        kind: str,
        user_id: str | None = None,
        event_time: Timestamp = None,
        **attributes: Any,
    ) -> Event | None:
        """A workflow was created, updated, terminated or deleted. `user_id` defaults to the client's."""
        return self.record(
            "workflow",
            event_name,
            event_time=event_time,
            **self._user(user_id),
            workflow_id=workflow_id,
            kind=kind,
            **attributes,
        )

    def record_job(
        self,
        event_name: JobEventName,
        *,
        workflow_id: str,
        job_id: str,
        user_id: str | None = None,
        status: str | None = None,
        scheduled_at: Timestamp = None,
        started_at: Timestamp = None,
        completed_at: Timestamp = None,
        event_time: Timestamp = None,
        **attributes: Any,
    ) -> Event | None:
        """A job changed state. `status` defaults to the one the event implies (created -> pending, ...)."""
        return self.record(
            "job",
            event_name,
            event_time=event_time,
            **self._user(user_id),
            workflow_id=workflow_id,
            job_id=job_id,
            status=status or JOB_STATUS_BY_EVENT.get(event_name, event_name),
            scheduled_at=scheduled_at,
            started_at=started_at,
            completed_at=completed_at,
            **attributes,
        )

    def record_job_log(
        self,
        *,
        workflow_id: str,
        job_id: str,
        count: int = 1,
        user_id: str | None = None,
        stream: str | None = None,
        sequence: int | None = None,
        message: str | None = None,
        event_time: Timestamp = None,
        **attributes: Any,
    ) -> Event | None:
        """`count` log entries written by a job; or, with `message`, one line of it."""
        optional = {"stream": stream, "sequence": sequence, "message": message}
        return self.record(
            "job_log",
            "created",
            event_time=event_time,
            **self._user(user_id),
            workflow_id=workflow_id,
            job_id=job_id,
            count=count,
            **{name: value for name, value in optional.items() if value is not None},
            **attributes,
        )

    def record_analytics_compat(
        self, event_type: CompatEventType, *, user_id: str, workflow_id: str, event_key: str | None = None, **data: Any
    ) -> AnalyticsCompatEvent | None:
        """A pre-aggregated event of the `analytics` compatibility topic, e.g.
        `record_analytics_compat("JOBS", user_id=u, workflow_id=w, job_execution_duration=12)`."""
        keyed = {"event_key": event_key} if event_key else {}
        return self.send(AnalyticsCompatEvent(event_type, user_id, workflow_id, data, **keyed))

    # -- delivery --------------------------------------------------------------------------------
    @property
    def stats(self) -> ClientStats:
        return self._pipeline.stats()

    def pump(self) -> None:
        """Batch what is queued and emit the batches that are due (for clients without a thread)."""
        self._pipeline.pump()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything recorded so far has been handed to the sink and, if the sink has
        `flush` (KafkaSink), delivered or reported as failed; False after `timeout` seconds (None:
        as long as it takes)."""
        return self._pipeline.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Stop accepting events, hand the queued ones to the sink and close it, within about `timeout`
        seconds (plus the sink's own bounded close; None: as long as it takes). Returns False if
        events were left behind (counted in `stats.abandoned`). Calling it again does nothing."""
        return self._pipeline.close(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------------
    def _time(self, event_time: Timestamp) -> datetime:
        if event_time is None:
            return datetime.fromtimestamp(self._pipeline.clock(), UTC)
        if isinstance(event_time, str):
            return parse_time(event_time, "event_time")
        return event_time

    def _user(self, user_id: str | None) -> dict[str, Any]:
        return {ATTR_USER_ID: user_id} if user_id is not None else {}


def _check_serializable(event: AnyEvent) -> None:
    """Serialise now, in the caller's thread, so a bad value is reported here with its field name."""
    event.json  # noqa: B018 - computes and caches the JSON; raises InvalidEvent naming the field
