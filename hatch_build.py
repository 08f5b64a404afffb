"""Build hook: generate the gRPC stubs from proto/ into their own package, `analytics_proto`.

Runs for every wheel, editable ones included, so `uv sync` (and `./dev setup`) on a fresh clone
produces analytics_proto/ (analytics_pb2.py, analytics_pb2.pyi, analytics_pb2_grpc.py and the
package's __init__.py). The whole folder is generated, ignored by git and never committed; the
proto is the only source.

protoc names Python modules after the proto's path (`analytics/analytics.proto` becomes the module
`analytics.analytics_pb2`), which would put generated code into `analytics`, the command line's
package. So protoc writes into a scratch folder, and the stubs are moved into analytics_proto with
their one import of each other rewritten. The proto keeps its path, so the descriptors (and what
server reflection shows) still name `analytics/analytics.proto`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PROTO_ROOT = "proto"
PROTOS = ["analytics/analytics.proto"]
PACKAGE = "analytics_proto"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
INIT = '''"""Generated from proto/ by hatch_build.py when the package is built: do not edit, never commit.

The Python stubs of the gRPC contract (package `analytics`, service `AnalyticsService`):
`from analytics_proto import analytics_pb2 as pb, analytics_pb2_grpc as pb_grpc`.
"""
'''


def generate_stubs(root: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) into analytics_proto/ and return the files written there."""
    from importlib import resources

    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto
    package = root / PACKAGE
    with tempfile.TemporaryDirectory() as scratch:
        for proto in PROTOS:
            arguments = [
                "grpc_tools.protoc",
                f"--proto_path={root / PROTO_ROOT}",
                f"--proto_path={well_known}",
                f"--python_out={scratch}",
                f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}",
                str(root / PROTO_ROOT / proto),
            ]
            if protoc.main(arguments) != 0:
                raise RuntimeError(f"protoc failed on {PROTO_ROOT}/{proto}; see its message above")
        shutil.rmtree(package, ignore_errors=True)
        package.mkdir()
        outputs = [package / "__init__.py"]
        outputs[0].write_text(INIT)
        for proto in PROTOS:
            source_package = Path(proto).parent.as_posix().replace("/", ".")  # "analytics"
            stem = Path(proto).stem
            for suffix in SUFFIXES:
                generated = Path(scratch) / Path(proto).parent / (stem + suffix)
                text = generated.read_text()
                # `from analytics import analytics_pb2 as ...` -> `from analytics_proto import analytics_pb2 as ...`
                text = re.sub(
                    rf"^from {re.escape(source_package)} import ({stem}_pb2)",
                    rf"from {PACKAGE} import \1",
                    text,
                    flags=re.MULTILINE,
                )
                target = package / (stem + suffix)
                target.write_text(text)
                outputs.append(target)
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
