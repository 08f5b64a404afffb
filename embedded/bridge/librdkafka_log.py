"""librdkafka's own log lines, passed on to the bridge's log without flooding it."""

from __future__ import annotations

import logging
import re
import time

log = logging.getLogger("embedded.bridge.consumer")  # where these lines have always been logged

# A librdkafka log line that repeats is passed on at most this often (LibrdkafkaLog).
REPEATS_EVERY_S = 60.0

# librdkafka's word that a partition's next offset is no longer on the broker (auto.offset.reset).
OFFSET_RESET = re.compile(r"(?P<topic>\S+) \[(?P<partition>\d+)\]: offset reset \(at offset (?P<at>\d+)")


class LibrdkafkaLog(logging.Logger):
    """librdkafka's log lines (the `logger` of its configuration), passed on to the consumer's logger;
    the partitions it moved to the earliest offset the broker still holds are kept for the
    consumer to count what it never got.

    A line that repeats (the same but for its numbers) is passed on once a minute, with how many
    like it came meanwhile: a broker down for 27 s gave 1,700 lines of "Connection refused"."""

    def __init__(self, name: str, clock=time.monotonic):
        super().__init__(name)
        self.resets: list[tuple[str, int, int]] = []  # (topic, partition, offset it was at)
        self._clock = clock
        self._seen: dict[str, list] = {}  # the line without its numbers -> [logged at, like it since]

    def log(self, level, msg, *args, **kwargs) -> None:
        line = msg % args if args else str(msg)
        if found := OFFSET_RESET.search(line):
            self.resets.append((found["topic"], int(found["partition"]), int(found["at"])))
        now, shape = self._clock(), re.sub(r"\d+", "#", line)
        seen = self._seen.get(shape)
        if seen is not None and now - seen[0] < REPEATS_EVERY_S:
            seen[1] += 1
            return
        if len(self._seen) >= 1000:  # shapes not seen for a minute are forgotten
            self._seen = {key: value for key, value in self._seen.items() if now - value[0] < REPEATS_EVERY_S}
        again = f" ({seen[1]} more like it in the last {now - seen[0]:.0f} s)" if seen and seen[1] else ""
        self._seen[shape] = [now, 0]
        log.log(level, "librdkafka: %s%s", line, again)
