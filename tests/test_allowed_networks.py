"""ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS and ANALYTICS_GRPC_ALLOWED_NETWORKS: who may connect.

The end-to-end tests connect from this machine's own non-loopback address (loopback is always
allowed), to servers listening on every address whose allow-list leaves that address out.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlencode

import grpc
import pytest
import urllib3

from analytics_proto import analytics_pb2 as pb
from core.networks import AllowedNetworks, grpc_peer_host, normalized, parse_networks
from embedded.allowed_clients import AllowedClients
from embedded.server import InsecureBind, check_bind
from tests import embedded_server
from tests.grpc_server import health_status, start_grpc
from tests.test_metrics import scrape, value

ELSEWHERE = "203.0.113.0/24"  # TEST-NET-3: no address this machine has


def own_address() -> str:
    """This machine's address on its way out (a UDP socket's connect sends nothing)."""
    candidates = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("198.51.100.1", 9))
        candidates.append(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    for address in candidates:
        if not address.startswith("127."):
            return address
    pytest.fail("these tests connect from a non-loopback address, and this machine has none")


# -- the list and its checks -------------------------------------------------------------------


def test_a_list_of_addresses_and_networks_is_kept_in_canonical_form():
    assert normalized(" 10.1.2.3/8, 192.168.1.7 ,fd00::/8,10.0.0.0/8,") == "10.0.0.0/8,192.168.1.7/32,fd00::/8"


@pytest.mark.parametrize(
    ("text", "named"),
    [("10.0.0.0/33", "'10.0.0.0/33'"), ("10.0.0.0/8,example.com", "'example.com'"), (" , ", "names no network")],
)
def test_an_entry_that_is_no_network_is_named(text, named):
    with pytest.raises(ValueError, match=named):
        parse_networks(text)


def test_loopback_is_always_allowed_and_others_only_when_listed():
    allowed = AllowedNetworks.from_setting("10.0.0.0/8,fd00::/8", "ANALYTICS_X")
    for host in ("127.0.0.1", "127.9.9.9", "::1", "10.200.1.1", "::ffff:10.0.0.5", "fd00::2", "fd00::1%eth0", None):
        assert allowed.allows(host), host
    for host in ("192.0.2.2", "::ffff:192.0.2.2", "fe80::1", "11.0.0.1", "not an address"):
        assert not allowed.allows(host), host
    assert allowed.refusal("192.0.2.2") == (
        "connections from 192.0.2.2 are not allowed: the address is not in ANALYTICS_X"
    )
    assert AllowedNetworks.from_setting(None, "ANALYTICS_X") is None


def test_an_ipv4_client_is_in_the_ipv6_networks_that_hold_its_mapped_address():
    """As in ClickHouse, which compares every client as IPv6: `::/0` is its own "from everywhere"."""
    everywhere = AllowedNetworks.from_setting("::/0", "ANALYTICS_X")
    for host in ("192.0.2.2", "10.1.2.3", "::ffff:192.0.2.2", "2001:db8::1"):
        assert everywhere.allows(host), host
    mapped = AllowedNetworks.from_setting("::ffff:192.0.2.0/120", "ANALYTICS_X")
    for host in ("192.0.2.2", "::ffff:192.0.2.200"):
        assert mapped.allows(host), host
    for host in ("192.0.3.1", "10.1.2.3", "2001:db8::1", "::c000:202"):
        assert not mapped.allows(host), host


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:10.1.2.3:5555", "10.1.2.3"),
        ("ipv6:[::1]:5555", "::1"),
        ("ipv6:%5B::ffff:10.1.2.3%5D:5555", "::ffff:10.1.2.3"),
        ("unix:/tmp/socket", None),
    ],
)
def test_the_host_of_a_grpc_peer(peer, host):
    assert grpc_peer_host(peer) == host


def test_a_public_address_without_a_password_needs_a_narrower_list_than_every_address():
    check_bind("0.0.0.0", "", AllowedNetworks.from_setting("10.0.0.0/8", "ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS"))
    for everyone in (None, AllowedNetworks.from_setting("10.0.0.0/8,0.0.0.0/0", "ANALYTICS_X")):
        with pytest.raises(InsecureBind, match="ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS"):
            check_bind("0.0.0.0", "", everyone)


def test_the_http_gate_passes_listed_clients_through_and_refuses_others():
    """The middleware alone, with the addresses an ASGI server would hand it."""
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["client"][0])

    gate = AllowedClients(app, AllowedNetworks.from_setting("10.0.0.0/8", "ANALYTICS_X"), "26.9")
    sent = []

    async def send(message):
        sent.append(message)

    for client in ("10.9.9.9", "127.0.0.1", "192.0.2.2"):
        asyncio.run(gate({"type": "http", "client": (client, 4000)}, None, send))
    assert reached == ["10.9.9.9", "127.0.0.1"]
    assert sent[0]["status"] == 403
    assert (b"x-clickhouse-exception-code", b"516") in sent[0]["headers"]
    assert b"connections from 192.0.2.2 are not allowed" in sent[1]["body"]


# -- end to end ----------------------------------------------------------------------------------


def test_the_embedded_clickhouse_refuses_clients_outside_its_networks(tmp_path):
    address = own_address()
    server = embedded_server.start(tmp_path / "data", None, "--host", "0.0.0.0", "--allowed-networks", ELSEWHERE)
    try:
        http = urllib3.PoolManager(retries=False)
        refused = http.request("POST", f"http://{address}:{server.port}/", body=b"SELECT 1")
        assert refused.status == 403
        assert refused.headers["X-ClickHouse-Exception-Code"] == "516"
        assert f"connections from {address} are not allowed".encode() in refused.data
        assert b"ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS" in refused.data
        assert http.request("GET", f"http://{address}:{server.port}/ping").status == 403
        assert http.request("POST", f"{server.url}/", body=b"SELECT 1").data == b"1\n"
        # Each refused address is logged once, however often it knocks.
        assert server.log().count(f"refused a request from {address}") == 1
        # The metrics count the refusals as the interface's own errors, as gRPC's count PERMISSION_DENIED;
        # they were missing from both counters, so a scrape showed one query served and nothing refused.
        assert http.request("GET", f"http://{address}:{server.port}/metrics").status == 403
        query = f"http://{address}:{server.port}/?{urlencode({'query': 'SELECT 1'})}"
        assert http.request("GET", query).status == 403
        samples = scrape(f"{server.url}/metrics")
        assert value(samples, "analytics_http_requests_total", kind="query") == 2  # one refused, one served
        assert value(samples, "analytics_http_errors_total", kind="query", code="516") == 1
        assert value(samples, "analytics_http_errors_total", kind="ping", code="516") == 1
        assert value(samples, "analytics_http_errors_total", kind="other", code="516") == 2  # the body's, /metrics
        assert value(samples, "analytics_http_request_seconds_count", kind="query") == 2
    finally:
        server.stop()


def test_the_embedded_clickhouse_serves_an_ipv4_client_listed_by_its_mapped_address(tmp_path):
    address = own_address()
    server = embedded_server.start(
        tmp_path / "data", None, "--host", "0.0.0.0", "--allowed-networks", f"{ELSEWHERE},::ffff:{address}/128"
    )
    try:
        http = urllib3.PoolManager(retries=False)
        answer = http.request("POST", f"http://{address}:{server.port}/", body=b"SELECT 1")
        assert (answer.status, answer.data) == (200, b"1\n")
    finally:
        server.stop()


def test_the_grpc_service_refuses_calls_from_outside_its_networks(tmp_path, clickhouse, analytics_db):
    address = own_address()
    metrics_port = embedded_server.free_port()
    service = start_grpc(
        tmp_path,
        "--host",
        "0.0.0.0",
        "--allowed-networks",
        ELSEWHERE,
        "--metrics-port",
        str(metrics_port),
        env={"ANALYTICS_CLICKHOUSE_HTTP_PORT": str(clickhouse.port)},
    )
    try:
        with grpc.insecure_channel(f"{address}:{service.port}") as channel:
            tail = pb.StreamJobLogsRequest(user_id="u1", workflow_id="w1", job_id="j1")
            for call in (
                lambda: service.stub(channel).GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id="u1"), timeout=10),
                lambda: health_status(channel),
                lambda: list(service.stub(channel).StreamJobLogs(tail, timeout=10)),
            ):
                with pytest.raises(grpc.RpcError) as refused:
                    call()
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert refused.value.details() == (
                    f"connections from {address} are not allowed: the address is not in ANALYTICS_GRPC_ALLOWED_NETWORKS"
                )
        with service.channel() as channel, pytest.raises(grpc.RpcError) as answered:  # from loopback: served
            service.stub(channel).GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id="u1"), timeout=10)
        assert answered.value.code() == grpc.StatusCode.NOT_FOUND
        # Its metrics port, on the same address, keeps the same list: scraped from elsewhere, 403.
        http = urllib3.PoolManager(retries=False)
        scraped = http.request("GET", f"http://{address}:{metrics_port}/metrics")
        assert (scraped.status, scraped.data.decode()) == (
            403,
            f"connections from {address} are not allowed: the address is not in ANALYTICS_GRPC_ALLOWED_NETWORKS\n",
        )
        scraped = http.request("GET", f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status == 200
        assert b'analytics_grpc_responses_total{grpc_code="PERMISSION_DENIED"' in scraped.data
    finally:
        service.stop()
