"""The proto stays wire-compatible with the scheduler's clients: field numbers and types of DESIGN.md.

Messages are encoded here byte by byte from field numbers (as an existing client or server
built from the original proto would put them on the wire) and decoded with the generated
classes, and the other way round.
"""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor

from analytics_proto import analytics_pb2 as pb

VARINT, LENGTH_DELIMITED = 0, 2

# DESIGN.md, "gRPC contract": message -> {field name: (number, type)}
CONTRACT = {
    "GetUserAnalyticsRequest": {"user_id": (1, "string")},
    "GetUserAnalyticsResponse": {
        "total_workflows": (1, "uint32"),
        "total_jobs": (2, "uint64"),
        "total_joblogs": (3, "uint64"),
        "total_job_execution_duration": (4, "uint64"),
    },
    "GetWorkflowAnalyticsRequest": {"user_id": (1, "string"), "workflow_id": (2, "string")},
    "GetWorkflowAnalyticsResponse": {
        "workflow_id": (1, "string"),
        "total_job_execution_duration": (2, "uint64"),
        "total_jobs": (3, "uint32"),
        "total_joblogs": (4, "uint64"),
    },
}
TYPE_NAMES = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
}


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | str) -> bytes:
    if isinstance(value, str):
        data = value.encode()
        return varint(number << 3 | LENGTH_DELIMITED) + varint(len(data)) + data
    return varint(number << 3 | VARINT) + varint(value)


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def decode(data: bytes) -> dict[int, tuple[int, int | bytes]]:
    """field number -> (wire type, value) of a flat message."""
    fields, position = {}, 0
    while position < len(data):
        key, position = read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, position = read_varint(data, position)
        elif wire_type == LENGTH_DELIMITED:
            length, position = read_varint(data, position)
            value, position = data[position : position + length], position + length
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
        fields[number] = (wire_type, value)
    return fields


@pytest.mark.parametrize("name", list(CONTRACT))
def test_the_original_messages_have_exactly_the_contracts_fields(name):
    descriptor = getattr(pb, name).DESCRIPTOR
    fields = {f.name: (f.number, TYPE_NAMES.get(f.type, f.type)) for f in descriptor.fields}
    assert fields == CONTRACT[name]


def test_the_original_rpcs_keep_their_names_and_messages():
    service = pb.DESCRIPTOR.services_by_name["AnalyticsService"]
    assert pb.DESCRIPTOR.package == "analytics"
    assert service.full_name == "analytics.AnalyticsService"
    for method, request, response in (
        ("GetUserAnalytics", "GetUserAnalyticsRequest", "GetUserAnalyticsResponse"),
        ("GetWorkflowAnalytics", "GetWorkflowAnalyticsRequest", "GetWorkflowAnalyticsResponse"),
    ):
        found = service.methods_by_name[method]
        assert (found.input_type.full_name, found.output_type.full_name) == (
            f"analytics.{request}",
            f"analytics.{response}",
        )
        assert not found.client_streaming and not found.server_streaming


def test_requests_of_existing_clients_decode():
    user = pb.GetUserAnalyticsRequest.FromString(field(1, "user-123"))
    assert user.user_id == "user-123"
    workflow = pb.GetWorkflowAnalyticsRequest.FromString(field(1, "user-123") + field(2, "workflow-456"))
    assert (workflow.user_id, workflow.workflow_id) == ("user-123", "workflow-456")


def test_responses_as_the_original_server_encoded_them_decode():
    big = 2**40 + 7  # beyond 32 bits where the contract says uint64
    user = pb.GetUserAnalyticsResponse.FromString(field(1, 42) + field(2, big) + field(3, big + 1) + field(4, big + 2))
    assert (user.total_workflows, user.total_jobs, user.total_joblogs, user.total_job_execution_duration) == (
        42,
        big,
        big + 1,
        big + 2,
    )
    workflow = pb.GetWorkflowAnalyticsResponse.FromString(
        field(1, "workflow-456") + field(2, big) + field(3, 2**32 - 1) + field(4, 99)
    )
    assert (workflow.workflow_id, workflow.total_job_execution_duration, workflow.total_jobs) == (
        "workflow-456",
        big,
        2**32 - 1,
    )
    assert workflow.total_joblogs == 99


def test_our_responses_put_each_value_under_the_contracts_number():
    user = pb.GetUserAnalyticsResponse(
        total_workflows=3, total_jobs=2**33, total_joblogs=5, total_job_execution_duration=6
    ).SerializeToString()
    assert decode(user) == {1: (VARINT, 3), 2: (VARINT, 2**33), 3: (VARINT, 5), 4: (VARINT, 6)}
    workflow = pb.GetWorkflowAnalyticsResponse(
        workflow_id="w", total_job_execution_duration=7, total_jobs=8, total_joblogs=9
    ).SerializeToString()
    assert decode(workflow) == {1: (LENGTH_DELIMITED, b"w"), 2: (VARINT, 7), 3: (VARINT, 8), 4: (VARINT, 9)}


def test_a_details_request_reads_as_the_original_request_to_an_old_server():
    """The newer messages extend the original ones with new numbers only."""
    details = pb.GetUserAnalyticsDetailsRequest(
        user_id="user-123", date_range=pb.DateRange(start_date="2026-01-01"), kind="HEARTBEAT"
    ).SerializeToString()
    assert pb.GetUserAnalyticsRequest.FromString(details).user_id == "user-123"
    workflow = pb.GetWorkflowAnalyticsDetailsRequest(user_id="u", workflow_id="w").SerializeToString()
    assert pb.GetWorkflowAnalyticsRequest.FromString(workflow).workflow_id == "w"
