"""The tail hub's bookkeeping, driven poll by poll with a stand-in for the log queries (a pure unit test).

What ClickHouse answers is tested with the real thing in test_grpc_log_tails.py; here the hub's
own rules: each line handed out once despite overlapping polls, the poll window only moving
forward, the linger after a job ends, a slow client cut off, and the end of every tail on close.
"""

from __future__ import annotations

from core.backend import QueryFailed
from server import tail
from server.logs import JobRef, LogRow
from server.tail import End, Subscription, TailHub

JOB = JobRef("u", "w", "j")
OTHER = JobRef("u", "w", "k")


def row(n: int, ingested_ms: int) -> LogRow:
    return LogRow(f"e{n}", "2026-03-02T10:00:00.000Z", "stdout", n, f"line {n}", f"{n:032X}", 0, ingested_ms, False)


class ScriptedLogs:
    """What each poll would find: ClickHouse's clock, the ended jobs, the landed lines."""

    def __init__(self):
        self.now_ms = 100_000
        self.ended_jobs: set[JobRef] = set()
        self.landed: dict[JobRef, list[LogRow]] = {}
        self.asked_since: list[int] = []
        self.asked_keys: list[list[str]] = []

    def ended(self, jobs, timeout):
        return self.now_ms, self.ended_jobs & set(jobs)

    def landed_since(self, jobs, since_ms, timeout):
        self.asked_since.append(since_ms)
        return {job: [r for r in rows if r.ingested_ms >= since_ms] for job, rows in self.landed.items() if job in jobs}

    def landed_keys(self, jobs, since_ms, timeout):
        return {job: {r.key for r in rows} for job, rows in self.landed_since(jobs, since_ms, timeout).items()}

    def landed_lines(self, jobs, since_ms, keys, timeout):
        self.asked_keys.append(sorted(keys))
        found = {job: [r for r in rows if r.key in keys] for job, rows in self.landed.items() if job in jobs}
        return {job: rows for job, rows in found.items() if rows}


def hub_with(logs: ScriptedLogs, linger: float = 0.0) -> TailHub:
    hub = TailHub(logs, interval=3600, linger=linger, poll_timeout=1)  # polled by hand: poll()
    hub._thread = object()  # no background thread: the test is the poller
    return hub


def poll(hub: TailHub) -> bool:
    """One tick of the poller; whether it was a sweep."""
    jobs, since_ms, sweep, epoch = hub._next_poll()
    hub._poll(jobs, since_ms, sweep, epoch)
    return sweep


def taken(subscription: Subscription) -> tuple[list[int], End | None]:
    rows, end = subscription.take(0)
    return [r.sequence for r in rows], end


def test_overlapping_polls_hand_each_line_out_once_to_every_tail_of_its_job():
    logs = ScriptedLogs()
    hub = hub_with(logs)
    first, second, other = hub.subscribe(JOB, 1), hub.subscribe(JOB, 1), hub.subscribe(OTHER, 1)
    assert first.since_ms == logs.now_ms - tail.OVERLAP_MS
    logs.landed[JOB] = [row(1, 99_000), row(2, 100_500)]
    assert poll(hub)  # the first poll sweeps
    logs.now_ms = 100_250
    logs.landed[JOB].append(row(3, 99_700))  # landed before the last poll's clock, visible only now
    assert not poll(hub)
    assert taken(first) == ([1, 2, 3], None)
    logs.now_ms = 100_500
    logs.landed[JOB].append(row(4, 96_000))  # an insert that took four seconds to show
    assert not poll(hub)
    assert taken(first) == ([], None)
    logs.now_ms = 102_250
    assert not poll(hub)
    logs.now_ms = 102_500
    assert poll(hub)  # the first poll two seconds after the last sweep sweeps, and finds it
    assert taken(first) == ([4], None)
    assert logs.asked_keys[-1] == [row(4, 0).key]  # a sweep fetches only the line it lacks
    assert taken(second) == ([1, 2, 3, 4], None)
    assert taken(other) == ([], None)
    # polls reach RECENT_MS back before the last poll's clock, sweeps OVERLAP_MS before the last sweep's
    recent = tail.RECENT_MS
    assert logs.asked_since == [95_000, 100_000 - recent, 100_250 - recent, 100_500 - recent, 95_000]
    logs.now_ms = 102_750
    poll(hub)
    assert logs.asked_since[-1] == 102_500 - recent
    assert first.hub._since_ms == 102_500 - tail.OVERLAP_MS  # where a new tail's history must reach


def test_a_job_that_ends_gets_its_linger_then_its_tails_end():
    logs = ScriptedLogs()
    hub = hub_with(logs, linger=2.0)
    subscription = hub.subscribe(JOB, 1)
    logs.ended_jobs.add(JOB)
    poll(hub)
    logs.now_ms += 1_500
    logs.landed[JOB] = [row(7, logs.now_ms - 10)]  # a line still on its way when the job ended
    assert not poll(hub)
    assert taken(subscription) == ([7], None)
    logs.now_ms += 600
    assert not poll(hub)  # the linger has passed: the next poll is a sweep, and the end
    assert taken(subscription) == ([], None)
    logs.now_ms += 250
    assert poll(hub)
    assert taken(subscription) == ([], End.JOB_ENDED)
    assert hub.tails == 0


def test_a_client_that_falls_too_far_behind_is_cut_off():
    subscription = Subscription(hub_with(ScriptedLogs()), JOB, 0)
    subscription.deliver([row(n, 0) for n in range(tail.MAX_BUFFERED_LINES)])
    assert subscription.take(0)[1] is None
    subscription.deliver([row(n, 0) for n in range(tail.MAX_BUFFERED_LINES)])
    subscription.deliver([row(0, 0)])
    assert subscription.take(0) == ([], End.TOO_SLOW)


def test_one_poll_of_more_lines_than_that_is_held_for_a_client_that_took_everything_before():
    subscription = Subscription(hub_with(ScriptedLogs()), JOB, 0)
    subscription.deliver([row(n, 0) for n in range(tail.MAX_BUFFERED_LINES + 1)])
    lines, end = subscription.take(0)
    assert (len(lines), end) == (tail.MAX_BUFFERED_LINES + 1, None)
    subscription.deliver([row(n, 0) for n in range(tail.MAX_BUFFERED_LINES + 1)])
    subscription.deliver([row(0, 0)])  # ... but not the next poll's while those wait
    assert subscription.take(0) == ([], End.TOO_SLOW)


def test_a_client_holding_too_many_bytes_is_cut_off_too():
    subscription = Subscription(hub_with(ScriptedLogs()), JOB, 0)
    big = row(1, 0)._replace(message="x" * (1 << 20))
    subscription.deliver([big] * 64)
    assert len(subscription.take(0)[0]) == 64  # what is taken is no longer held
    subscription.deliver([big] * 64)
    subscription.deliver([big])
    assert subscription.take(0) == ([], End.TOO_SLOW)


def test_a_sweep_missing_many_lines_reads_its_window_instead_of_asking_for_each():
    logs = ScriptedLogs()
    hub = hub_with(logs)
    subscription = hub.subscribe(JOB, 1)
    assert poll(hub)
    logs.now_ms = 100_250
    assert not poll(hub)
    logs.landed[JOB] = [row(n, 96_000) for n in range(tail.MAX_KEYS_ASKED + 1)]  # slow to show
    logs.now_ms = 102_250
    assert not poll(hub)
    logs.now_ms = 102_500
    assert poll(hub)
    assert logs.asked_keys == []
    assert taken(subscription) == (list(range(tail.MAX_KEYS_ASKED + 1)), None)
    logs.landed[JOB] += [row(n, 100_400) for n in range(1000, 1000 + tail.MAX_KEYS_ASKED)]
    logs.now_ms = 104_500
    assert not poll(hub)
    logs.now_ms = 104_750
    assert poll(hub)
    assert len(logs.asked_keys[-1]) == tail.MAX_KEYS_ASKED  # up to the limit, by key
    assert taken(subscription) == (list(range(1000, 1000 + tail.MAX_KEYS_ASKED)), None)


def test_closing_ends_every_tail_and_refuses_new_ones():
    hub = hub_with(ScriptedLogs())
    hub._thread = None
    running = hub.subscribe(JOB, 1)
    hub.close()
    assert taken(running) == ([], End.SHUTDOWN)
    assert taken(hub.subscribe(OTHER, 1)) == ([], End.SHUTDOWN)
    assert hub.tails == 0


def test_a_cancelled_tail_leaves_its_job():
    hub = hub_with(ScriptedLogs())
    subscription = hub.subscribe(JOB, 1)
    subscription.cancel()
    assert hub.tails == 0 and not hub._jobs
    assert taken(subscription) == ([], End.CANCELLED)


def test_after_a_pause_the_polls_start_from_now_not_from_the_last_poll():
    logs = ScriptedLogs()
    hub = hub_with(logs)
    hub.subscribe(JOB, 1).cancel()
    logs.now_ms += 3_600_000  # an hour without tails
    later = hub.subscribe(JOB, 1)
    assert later.since_ms == logs.now_ms - tail.OVERLAP_MS
    assert poll(hub)
    assert logs.asked_since == [logs.now_ms - tail.OVERLAP_MS]


def test_a_poll_begun_before_a_pause_hands_nothing_to_the_tails_after_it():
    """Every tail of a job leaves while a sweep runs and a new one comes: the new tail starts from
    now (its history holds what came before), so the old sweep's wider window must not reach it."""
    logs = ScriptedLogs()
    hub = hub_with(logs)
    hub.subscribe(JOB, 1)
    logs.landed[JOB] = [row(1, 99_000), row(2, 99_500)]
    begun = hub._next_poll()  # a sweep reaching back to 95_000
    hub._jobs[JOB].subscribers[0].cancel()
    logs.now_ms = 110_000
    later = hub.subscribe(JOB, 1)  # from 105_000: lines 1 and 2 are in its history
    hub._poll(*begun)
    assert taken(later) == ([], None)
    logs.landed[JOB].append(row(3, 109_000))
    assert poll(hub)
    assert taken(later) == ([3], None)


class FailingLogs(ScriptedLogs):
    def __init__(self):
        super().__init__()
        self.failing = False

    def ended(self, jobs, timeout):
        if self.failing:
            raise QueryFailed("ClickHouse is away")
        return super().ended(jobs, timeout)


def test_a_failure_before_a_pause_does_not_count_against_the_tails_after_it():
    """A short outage while the last tail left, an hour without tails, then one failed poll: that
    poll is retried, not taken as an hour of failures that ends every tail."""
    logs, now = FailingLogs(), [0.0]
    hub = TailHub(logs, interval=3600, linger=0, poll_timeout=1, clock=lambda: now[0])
    hub._thread = object()  # no background thread: the test is the poller
    first = hub.subscribe(JOB, 1)
    logs.failing = True
    hub._tick()
    first.cancel()
    hub._tick()  # nothing to poll
    logs.failing, now[0] = False, 3600.0
    later = hub.subscribe(JOB, 1)
    logs.failing = True
    hub._tick()
    assert taken(later) == ([], None)
    now[0] += tail.FAILING_SECONDS  # failing that long ends the tails, as it should
    hub._tick()
    assert taken(later) == ([], End.STORE_FAILING)
