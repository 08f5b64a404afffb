"""Server reflection under both of its names: grpc.reflection.v1 and the older v1alpha.

grpcio-reflection serves only v1alpha (grpc/grpc#38576). grpc-go's server, as the scheduler's own
analytics service ran it, serves both, and clients that speak only v1 (grpc-go's
grpcreflect.NewClientV1, `buf curl --reflect-protocol grpc-v1`) were answered UNIMPLEMENTED.
v1's messages are v1alpha's field for field, so one servicer answers both names.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"


def enable_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Reflection of ``service_names`` (the reflection service's own names are added)."""
    names = (*service_names, reflection.SERVICE_NAME)
    servicer = reflection.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": info}),)
    )
