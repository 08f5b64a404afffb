"""`analytics up`: the whole stack on the embedded default, in one process that owns chDB.

Order of start: chDB and its HTTP interface; the schema (`dbt build` against that interface);
then the components that need the schema (gRPC service, Kafka bridge, demo traffic, Dagster).
Prometheus metrics of every part are served at the HTTP interface's ``/metrics``.
On SIGTERM or Ctrl-C uvicorn stops taking requests, the components stop in reverse order
(each finishing what it holds: the gRPC service drains, the bridge commits), in-flight HTTP
requests finish, and chDB is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import anyio
import anyio.to_thread
import uvicorn
from prometheus_client import REGISTRY

from core.settings.clickhouse import EmbeddedClickHouseSettings
from core.settings.composed import Settings
from embedded.engine import Engine
from embedded.http_metrics import Registries
from embedded.server import serve_settings

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something `up` runs next to the embedded ClickHouse; both calls may block."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


# A factory gets the settings and the open engine and returns the component, or None to skip it.
ComponentFactory = Callable[[Settings, Engine], "Component | None"]


@dataclass
class Stack:
    settings: Settings
    components: list[ComponentFactory] = field(default_factory=list)
    migrate: bool = True
    started: list[Component] = field(default_factory=list)
    failed: BaseException | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    up: threading.Event = field(default_factory=threading.Event)  # every component started
    start_ended: threading.Event = field(default_factory=threading.Event)  # up, failed or stopped
    # One Prometheus endpoint for the whole stack: the HTTP interface's /metrics serves these.
    metrics: Registries = field(default_factory=lambda: Registries([REGISTRY]))

    def run(self) -> int:
        """Serve until a signal; 0 after a clean stop, 1 when start-up failed or a component failed."""
        settings = self.settings
        servers: list[uvicorn.Server] = []

        @contextlib.asynccontextmanager
        async def components_lifespan(app):
            task = asyncio.create_task(self._start_components(app.state.front.engine, servers[0]))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await anyio.to_thread.run_sync(self._stop_components)

        stack = self

        class StackServer(uvicorn.Server):
            """Stops the components before the HTTP interface stops taking requests: they still
            use it to finish their work (the bridge's last batch, the demo's last events)."""

            def handle_exit(self, sig, frame) -> None:
                if self.should_exit or stack.stopping.is_set():
                    super().handle_exit(sig, frame)  # a second signal: stop now
                    return
                stack.stopping.set()
                starting = "" if stack.up.is_set() else "; the start-up step under way ends first"
                log.info("asked to stop (%s)%s", signal.Signals(sig).name, starting)

                def stop_then_exit() -> None:
                    # The step under way (the schema build, a component's start) still needs the
                    # HTTP interface: it ends, no other starts, then the components stop.
                    stack.start_ended.wait()
                    stack._stop_components()
                    super(StackServer, self).handle_exit(sig, frame)

                threading.Thread(target=stop_then_exit, name="stack-stop", daemon=True).start()

        try:
            serve_settings(
                settings.slice(EmbeddedClickHouseSettings),
                server_class=StackServer,
                extra_lifespan=components_lifespan,
                on_server=servers.append,
                metrics=self.metrics,
            )
        except KeyboardInterrupt:  # uvicorn raises the Ctrl-C it handled again once all has stopped
            if not self.stopping.is_set():
                raise
        return 1 if self.failed is not None else 0

    async def _start_components(self, engine: Engine, server: uvicorn.Server) -> None:
        while not server.started:  # the HTTP interface must listen before dbt can use it
            await asyncio.sleep(0.05)
        steps = [self._migrate] if self.migrate else []
        steps += [partial(self._start, factory, engine, server) for factory in self.components]
        try:
            for step in [*steps, None]:
                if self.stopping.is_set():  # asked meanwhile: no further step starts
                    log.info("stopping before the stack was up (no start-up step under way)")
                    return
                if step is not None:
                    await anyio.to_thread.run_sync(step)
            url = self.settings.resolved_clickhouse_url
            self.up.set()
            log.info("the stack is up: ClickHouse HTTP on %s (its SQL console: %s/play)", url, url.rstrip("/"))
        except Exception as error:  # noqa: BLE001 - reported, then the whole stack stops
            log.error("start-up failed: %s", error)
            self.failed = error
            server.should_exit = True
        finally:
            self.start_ended.set()

    def _start(self, factory: ComponentFactory, engine: Engine, server: uvicorn.Server) -> None:
        component = factory(self.settings, engine)
        if component is None:
            return
        log.info("starting %s", component.name)
        component.start()
        self.started.append(component)
        # A component that can fail once running (the bridge) stops the stack when it does.
        watch = getattr(component, "watch", None)
        if watch is not None:
            watch(lambda error, name=component.name: self._failed_while_running(name, error, server))
        # A component with metrics of its own (the gRPC service) joins the one endpoint.
        registry = getattr(getattr(component, "metrics", None), "registry", None)
        if registry is not None:
            self.metrics.add(registry)

    def _migrate(self) -> None:
        from core.settings.schema import SchemaSettings
        from operations.migrate import build_for_start

        log.info("building the schema (dbt build)")
        failing = build_for_start(self.settings.slice(SchemaSettings))
        log.info("the schema is built")
        if failing:
            log.warning(
                "the schema is built, but the data fails %d dbt test(s): %s. The stack starts so that it can"
                " take events in and be repaired: Dagster's pipeline_health names the days, and"
                " daily_reconciliation or `analytics backfill --day D` rebuilds them",
                len(failing),
                ", ".join(failing),
            )

    def _failed_while_running(self, name: str, error: BaseException, server: uvicorn.Server) -> None:
        """A component stopped by itself: the stack stops too (exit 1), where it went on serving and
        said nothing more, so that whatever supervises it (systemd, Kubernetes) starts it again."""
        if self.stopping.is_set():
            return
        log.error("%s stopped: %s; the stack stops (exit status 1)", name, error)
        self.failed = error
        server.should_exit = True

    def _stop_components(self) -> None:
        while self.started:
            try:
                component = self.started.pop()
            except IndexError:  # stopped meanwhile by the other path (signal or lifespan)
                return
            log.info("stopping %s", component.name)
            try:
                component.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("%s did not stop cleanly", component.name)
