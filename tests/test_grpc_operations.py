"""Running the gRPC service: id formats, tokens, TLS and reflection off (refusals, failures, deadlines
and drain: test_grpc_operations_lifecycle.py)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from tests.grpc_operations_support import logs, rpc_error, small, user_totals  # noqa: F401 - fixtures
from tests.grpc_server import (
    SERVING,
    health_status,
    listed_services,
    start_grpc,
    wait_for_exit,
)
from tests.intake import post_batch

# -- ids ----------------------------------------------------------------------------------------


def test_uuid_ids(analytics_db, logs):
    user, workflow, job = (str(uuid.uuid4()) for _ in range(3))
    ids = {"user_id": user, "workflow_id": workflow}
    events = {
        "workflows": [
            {
                "event_id": str(uuid.uuid4()),
                "event_time": "2026-06-01T08:00:00Z",
                "event_type": "workflow",
                "event_name": "created",
                "kind": "HEARTBEAT",
                **ids,
            }
        ],
        "jobs": [
            {
                "event_id": str(uuid.uuid4()),
                "event_time": "2026-06-01T09:00:42.500Z",
                "event_type": "job",
                "event_name": "completed",
                "job_id": job,
                "status": "COMPLETED",
                "started_at": "2026-06-01T09:00:00Z",
                "completed_at": "2026-06-01T09:00:42.500Z",
                **ids,
            }
        ],
    }
    for topic, batch in events.items():
        assert post_batch(analytics_db, topic, batch).status == 200
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url, "--id-format", "uuid")
    try:
        with service.channel() as channel:
            stub = service.stub(channel)
            assert user_totals(stub, user) == (1, 1, 0, 42)
            assert user_totals(stub, user.upper()) == (1, 1, 0, 42)  # UUIDs ignore case
            workflow_answer = stub.GetWorkflowAnalytics(
                pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id=workflow.upper()), timeout=30
            )
            assert (workflow_answer.workflow_id, workflow_answer.total_jobs) == (workflow, 1)
            for request in (
                pb.GetUserAnalyticsRequest(user_id="user-123"),
                pb.GetUserAnalyticsRequest(user_id=user[:-1]),
            ):
                error = rpc_error(stub.GetUserAnalytics, request, timeout=30)
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "malformed UUID" in error.details()
            error = rpc_error(
                stub.GetWorkflowAnalytics,
                pb.GetWorkflowAnalyticsRequest(user_id=user, workflow_id="workflow-456"),
                timeout=30,
            )
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "workflow_id must be a UUID" in error.details()
            error = rpc_error(stub.GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=str(uuid.uuid4())), timeout=30)
            assert error.code() == grpc.StatusCode.NOT_FOUND
    finally:
        assert service.stop() == 0


# -- reflection ---------------------------------------------------------------------------------


def test_reflection_can_be_turned_off(analytics_db, logs, small):
    service = start_grpc(logs, "--clickhouse-url", analytics_db.url, "--no-reflection")
    try:
        with pytest.raises(grpc.RpcError) as caught:
            listed_services(service.target)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with service.channel() as channel:
            assert health_status(channel) == SERVING
            user = small.expected.users[0]
            assert user_totals(service.stub(channel), user) == small.expected.user(user)
    finally:
        assert service.stop() == 0


# -- tokens -------------------------------------------------------------------------------------

OWN_TOKEN = "own-token-0123456789"
READ_ALL_TOKEN = "dashboards-0123456789"


@pytest.fixture(scope="module")
def guarded(analytics_db, logs, small):
    """A service that needs tokens: one from the variable for the first user, one file token reading all."""
    tokens_file = logs / "tokens"
    tokens_file.write_text(f"# the dashboards read every user\n{READ_ALL_TOKEN} *\n")
    service = start_grpc(
        logs,
        "--clickhouse-url",
        analytics_db.url,
        "--tokens-file",
        str(tokens_file),
        env={"ANALYTICS_GRPC_TOKENS": f"{OWN_TOKEN}={small.expected.users[0]}"},
    )
    yield service
    assert service.stop() == 0


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_a_token_reads_its_own_user_only(guarded, small):
    own, other = small.expected.users[0], small.expected.users[1]
    with guarded.channel() as channel:
        stub = guarded.stub(channel)
        assert user_totals(stub, own, metadata=bearer(OWN_TOKEN)) == small.expected.user(own)
        error = rpc_error(
            stub.GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=other), timeout=30, metadata=bearer(OWN_TOKEN)
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        workflow = sorted(w for u, w in small.expected.workflows if u == other)[0]
        error = rpc_error(
            stub.ListWorkflowAnalytics,
            pb.ListWorkflowAnalyticsRequest(user_id=other),
            timeout=30,
            metadata=bearer(OWN_TOKEN),
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        # a token reading every user
        answer = stub.GetWorkflowAnalytics(
            pb.GetWorkflowAnalyticsRequest(user_id=other, workflow_id=workflow),
            timeout=30,
            metadata=bearer(READ_ALL_TOKEN),
        )
        assert answer.total_jobs == small.expected.workflow(other, workflow)[0]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], "this server needs a token"),
        (bearer("not-a-known-token-at-all"), "the bearer token is not valid"),
        ([("authorization", f"Basic {OWN_TOKEN}")], "the bearer token is not valid"),
    ],
    ids=["missing", "unknown", "not-bearer"],
)
def test_no_or_a_bad_token_is_unauthenticated(guarded, small, metadata, message):
    with guarded.channel() as channel:
        error = rpc_error(
            guarded.stub(channel).GetUserAnalytics,
            pb.GetUserAnalyticsRequest(user_id=small.expected.users[0]),
            timeout=30,
            metadata=metadata,
        )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert message in error.details()


def test_health_and_reflection_need_no_token(guarded):
    with guarded.channel() as channel:
        assert health_status(channel) == SERVING
    assert "analytics.AnalyticsService" in listed_services(guarded.target)


# -- TLS ----------------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(logs) -> Path:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests make their certificates with the openssl command (apt-get install openssl)")
    folder = logs / "pki"
    folder.mkdir()
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA", cwd=folder
    )
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", *curve, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext",
            cwd=folder,
        )  # fmt: skip
    return folder


def test_tls(analytics_db, logs, certificates, small):
    pki = certificates
    trusted = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
    service = start_grpc(
        logs,
        "--clickhouse-url",
        analytics_db.url,
        "--tls-cert",
        str(pki / "server.pem"),
        "--tls-key",
        str(pki / "server.key"),
        credentials=trusted,
    )
    user = small.expected.users[0]
    try:
        with service.channel() as channel:
            assert user_totals(service.stub(channel), user) == small.expected.user(user)
        with grpc.insecure_channel(service.target) as plaintext:
            error = rpc_error(
                service.stub(plaintext).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=user), timeout=5
            )
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert service.stop() == 0


def test_a_certificate_not_the_keys_or_a_client_ca_that_is_not_pem_is_refused(logs, certificates):
    """gRPC's core only logged such files, and the start failed as if the port were taken."""
    pki = certificates
    cases = [
        (["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "client.key")], "are not a PEM certificate"),
        (
            [
                "--tls-cert",
                str(pki / "server.pem"),
                "--tls-key",
                str(pki / "server.key"),
                "--tls-client-ca",
                "/etc/hosts",
            ],
            "the client CA (ANALYTICS_GRPC_TLS_CLIENT_CA) /etc/hosts holds no PEM certificate",
        ),
    ]
    for args, message in cases:
        service = start_grpc(logs, "--clickhouse-url", "http://127.0.0.1:1", *args, wait=False)
        output = wait_for_exit(service)
        assert service.process.returncode != 0 and message in output, output
        assert "cannot listen on" not in output


def test_mutual_tls_needs_a_client_certificate(analytics_db, logs, certificates, small):
    pki = certificates
    client = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes(),
        certificate_chain=(pki / "client.pem").read_bytes(),
    )
    service = start_grpc(
        logs,
        "--clickhouse-url",
        analytics_db.url,
        "--tls-cert",
        str(pki / "server.pem"),
        "--tls-key",
        str(pki / "server.key"),
        "--tls-client-ca",
        str(pki / "ca.pem"),
        credentials=client,
    )
    user = small.expected.users[1]
    try:
        with service.channel() as channel:
            assert user_totals(service.stub(channel), user) == small.expected.user(user)
        anonymous = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
        with service.channel(anonymous) as channel:
            error = rpc_error(
                service.stub(channel).GetUserAnalytics, pb.GetUserAnalyticsRequest(user_id=user), timeout=5
            )
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert service.stop() == 0
