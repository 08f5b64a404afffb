"""Build hook: generate the gRPC stubs from proto/ into the `analytics` package.

Runs for every wheel, editable ones included, so `uv sync` (and `./dev setup`) on a fresh clone
produces analytics/analytics_pb2.py, analytics_pb2.pyi and analytics_pb2_grpc.py. The generated
files are ignored by git and never committed; the proto is the only source.
"""

from __future__ import annotations

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PROTO_ROOT = "proto"
PROTOS = ["analytics/analytics.proto"]


def generate_stubs(root: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) and return the files it wrote."""
    from importlib import resources

    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto
    for proto in PROTOS:
        arguments = [
            "grpc_tools.protoc",
            f"--proto_path={root / PROTO_ROOT}",
            f"--proto_path={well_known}",
            f"--python_out={root}",
            f"--pyi_out={root}",
            f"--grpc_python_out={root}",
            str(root / PROTO_ROOT / proto),
        ]
        if protoc.main(arguments) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_ROOT}/{proto}; see its message above")
    outputs = []
    for proto in PROTOS:
        stem = root / proto.removesuffix(".proto")
        outputs += [stem.with_name(stem.name + suffix) for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]
    return outputs


class GrpcStubsHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return  # the sdist ships the proto; its wheel build generates the stubs
        root = Path(self.root)
        for path in generate_stubs(root):
            # git ignores the stubs, and hatchling with it, unless they are named here
            build_data["artifacts"].append(path.relative_to(root).as_posix())
