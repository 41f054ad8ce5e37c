"""The NiFi 2.x Python processor (docker/nifi/python/extensions/loupe_nifi) against real nodes.

NiFi's `nifiapi` package is not on the package index, so the processor runs here against the
stand-in in tests/python/nifiapi (same module, class and method names as NiFi's; see its
docstring), loaded the way NiFi's ExtensionManager loads a processor package: every other
module of the directory first, under its file name, then the processor module. The FlowFile
given to `transform` is a stand-in of NiFi's InputFlowFile (getContentsAsBytes, getAttribute,
getAttributes, getSize).

The checks: the shipped generated module matches the .proto; NiFi can read the processor's
details (it parses them from the source, not by importing it); a `loupe serve classify`
node's verdict arrives as the FlowFile's attributes, equal to the node's own gRPC reply; a
corrupt image goes to `failure` with the node's `error.kind`; an unreachable node, a node
that never answers and an overloaded node go to `failure` quickly, with a retry hint.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from conftest import REPO, RPC_TIMEOUT, require_module, require_ort

from nifiapi.flowfiletransform import route
from nifiapi.properties import ProcessContext

EXT_DIR = REPO / "docker" / "nifi" / "python" / "extensions" / "loupe_nifi"
GENERATE = REPO / "docker" / "nifi" / "python" / "generate.sh"
MODEL_DIR = REPO / "models" / "tiny-classifier"
FLOWFILE_TRANSFORM = "org.apache.nifi.python.processor.FlowFileTransform"


# --------------------------------------------------------------------------
# Stand-ins and helpers
# --------------------------------------------------------------------------


class InputFlowFile:
    """Stand-in for NiFi's InputFlowFile (Java `StandardInputFlowFile`, seen through Py4J)."""

    def __init__(self, content: bytes, attributes: dict[str, str]):
        self._content = content
        self._attributes = {"uuid": "0b5a4a1e-5f0c-4d8e-9a51-4d2f7c0b1a11", "filename": "x.png",
                            "path": "./", **attributes}

    def getContentsAsBytes(self):
        return self._content

    def getAttribute(self, name):
        return self._attributes.get(name)

    def getAttributes(self):
        return dict(self._attributes)

    def getSize(self):
        return len(self._content)


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def processor_module():
    """The processor module, loaded as NiFi loads a processor package."""
    for dep in sorted(EXT_DIR.glob("*.py")):
        if dep.name not in ("__init__.py", "LoupeProcessor.py"):
            load_module(dep.stem, dep)
    return load_module("LoupeProcessor", EXT_DIR / "LoupeProcessor.py")


@pytest.fixture
def make_processor(processor_module):
    made = []

    def make(**properties):
        proc = processor_module.LoupeProcessor()
        ctx = ProcessContext(proc.getPropertyDescriptors(), properties, name="LoupeProcessor")
        proc.setContext(ctx)
        made.append((proc, ctx))
        return proc, ctx

    yield make
    for proc, ctx in made:
        proc.onStopped(ctx)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour 8-bit RGB PNG, written by hand (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    row = b"\x00" + bytes(rgb) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def classify_node(loupe_node):
    ort = require_ort("the `classify` node")
    return loupe_node("classify", settings={"model": str(MODEL_DIR)}, env={"ORT_DYLIB_PATH": ort})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeNode:
    """A grpcio server answering `loupe.v1.Processor/Process` with `handler(request, context)`."""

    def __init__(self, pb2, handler):
        self.requests = []

        def process(request, context):
            self.requests.append(request)
            return handler(request, context)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "loupe.v1.Processor",
                    {
                        "Process": grpc.unary_unary_rpc_method_handler(
                            process,
                            request_deserializer=pb2.ProcessRequest.FromString,
                            response_serializer=pb2.ProcessResponse.SerializeToString,
                        )
                    },
                ),
            )
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.address = f"127.0.0.1:{self.port}"

    def stop(self):
        self.server.stop(grace=0).wait(timeout=5)


# --------------------------------------------------------------------------
# What NiFi reads without running the processor
# --------------------------------------------------------------------------


def test_generated_module_is_up_to_date(tmp_path):
    require_module("grpc_tools", "grpcio-tools")  # generate.sh runs grpc_tools.protoc
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(GENERATE), str(tmp_path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"generate.sh failed:\n{done.stdout}\n{done.stderr}"
    fresh = (tmp_path / "loupe_pb2.py").read_bytes()
    shipped = (EXT_DIR / "loupe_pb2.py").read_bytes()
    assert fresh == shipped, (
        "docker/nifi/python/extensions/loupe_nifi/loupe_pb2.py is out of date with "
        "proto/loupe/v1/loupe.proto: run docker/nifi/python/generate.sh"
    )


def test_processor_details_as_nifi_parses_them():
    """NiFi finds processors by parsing source (ast), so details must be literals."""
    assert (EXT_DIR / "__init__.py").is_file(), "NiFi loads a package directory via __init__.py"
    tree = ast.parse((EXT_DIR / "LoupeProcessor.py").read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    proc = classes["LoupeProcessor"]
    inner = {n.name: n for n in proc.body if isinstance(n, ast.ClassDef)}

    def assigned(cls, name):
        for n in cls.body:
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and n.targets[0].id == name:
                return ast.literal_eval(n.value)
        raise AssertionError(f"{cls.name}.{name} is not assigned a literal")

    assert FLOWFILE_TRANSFORM in assigned(inner["Java"], "implements")
    details = inner["ProcessorDetails"]
    assert isinstance(assigned(details, "version"), str)
    assert isinstance(assigned(details, "description"), str)
    assert all(isinstance(t, str) for t in assigned(details, "tags"))

    pins = {}
    for line in (REPO / "tests" / "python" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    deps = assigned(details, "dependencies")
    assert deps, "the processor needs grpcio and protobuf installed by NiFi"
    for dep in deps:
        name, version = dep.split("==", 1)
        assert pins.get(name.lower()) == version, (
            f"dependency {dep} differs from tests/python/requirements.txt "
            f"({name}=={pins.get(name.lower())})"
        )
    assert {d.split("==")[0] for d in deps} >= {"grpcio", "protobuf"}


def test_properties_validate_like_nifi(make_processor):
    proc, ctx = make_processor(**{"Node Endpoint": "loupe-classify:50051"})
    assert ctx.getProperty("Timeout").getValue() == "30 secs"
    assert ctx.getProperty("Max Message Size").getValue() == "64 MB"
    with pytest.raises(ValueError, match="Node Endpoint"):
        make_processor()  # required
    with pytest.raises(ValueError, match="Timeout"):
        make_processor(**{"Node Endpoint": "h:1", "Timeout": "soon"})
    with pytest.raises(ValueError, match="Compression"):
        make_processor(**{"Node Endpoint": "h:1", "Compression": "zstd"})


# --------------------------------------------------------------------------
# Against a real node
# --------------------------------------------------------------------------


def test_classify_verdict_arrives_as_attributes(classify_node, make_processor, pb):
    image = png(64, 64, (210, 20, 20))
    attrs = {"camera.id": "cam3", "line": "L1", "secret.token": "not-for-the-node"}
    proc, ctx = make_processor(**{
        "Node Endpoint": classify_node.address,
        "Attributes to Send": r"camera\..*|line|filename",
    })
    flowfile = InputFlowFile(image, attrs)

    result = proc.transform(ctx, flowfile)

    assert result.getRelationship() == "success", result.getAttributes()
    got = result.getAttributes()

    # The node's own answer to the same FlowFile, over plain gRPC.
    sent = {k: v for k, v in flowfile.getAttributes().items()
            if k in ("camera.id", "line", "filename")}
    reply = classify_node.processor(pb).Process(
        pb.pb2.ProcessRequest(flow_file=pb.pb2.FlowFile(uuid="direct", attributes=sent,
                                                         content=image)),
        timeout=RPC_TIMEOUT,
    )
    assert [o.relationship for o in reply.outputs] == ["success"]
    want = dict(reply.outputs[0].flow_file.attributes)
    assert want["classify.label"] == "burr"  # red -> burr in the tiny model
    classify_attrs = {k: v for k, v in want.items() if k.startswith("classify.")}
    assert {"classify.label", "classify.score"} <= set(classify_attrs)
    assert {k: got.get(k) for k in classify_attrs} == classify_attrs

    assert got["loupe.relationship"] == "success"
    assert got["loupe.outputs"] == "1"
    assert got["camera.id"] == "cam3"
    assert "secret.token" not in got, "an attribute outside 'Attributes to Send' reached the node"
    assert "uuid" not in got
    # classify leaves the content alone: NiFi keeps the FlowFile's content as it is.
    assert result.getContents() is None
    routed = route(result, flowfile.getAttributes(), image)
    assert set(routed) == {"success", "original"}
    assert routed["success"][0]["classify.label"] == "burr"
    assert routed["success"][1] == image

    # A second FlowFile reuses the channel.
    result2 = proc.transform(ctx, InputFlowFile(png(64, 64, (20, 30, 220)), {}))
    assert result2.getAttributes()["classify.label"] == "loose_wire"
    assert len(proc._channels) == 1


def test_corrupt_image_goes_to_failure_with_the_nodes_reason(classify_node, make_processor, pb):
    junk = b"\x89PNG\r\n\x1a\n this is not an image"
    proc, ctx = make_processor(**{"Node Endpoint": "http://" + classify_node.address})
    result = proc.transform(ctx, InputFlowFile(junk, {"camera.id": "cam3"}))

    assert result.getRelationship() == "failure"
    got = result.getAttributes()
    reply = classify_node.processor(pb).Process(
        pb.pb2.ProcessRequest(flow_file=pb.pb2.FlowFile(uuid="direct", content=junk)),
        timeout=RPC_TIMEOUT,
    )
    want = dict(reply.outputs[0].flow_file.attributes)
    assert reply.outputs[0].relationship == "failure"
    assert got["error.kind"] == want["error.kind"]
    assert got["error.message"]
    assert got["error.retryable"] == "false"
    assert got["loupe.relationship"] == "failure"
    assert ctx.yielded == 0
    # NiFi routes the incoming FlowFile, content untouched, with the error attributes.
    routed = route(result, {"uuid": "u"}, junk)
    assert routed == {"failure": (routed["failure"][0], junk)}


# --------------------------------------------------------------------------
# Transport trouble
# --------------------------------------------------------------------------


def test_unreachable_node_fails_fast_with_a_retry_hint(make_processor):
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there now
    proc, ctx = make_processor(**{"Node Endpoint": endpoint, "Timeout": "5 secs"})
    t0 = time.monotonic()
    result = proc.transform(ctx, InputFlowFile(b"img", {}))
    elapsed = time.monotonic() - t0

    assert result.getRelationship() == "failure"
    got = result.getAttributes()
    assert got["error.kind"] == "unavailable"
    assert got["error.retryable"] == "true"
    assert got["error.node"] == endpoint
    assert endpoint in got["error.message"] and "unreachable" in got["error.message"]
    assert elapsed < 5.0, f"a refused connection took {elapsed:.1f}s (Timeout is 5 s)"
    assert ctx.yielded == 1, "the processor should yield so NiFi backs off"


def test_a_node_that_never_answers_is_cut_off_at_the_timeout(make_processor):
    # A TCP listener that accepts and never speaks HTTP/2: the call can only time out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = "127.0.0.1:%d" % silent.getsockname()[1]
        proc, ctx = make_processor(**{"Node Endpoint": endpoint, "Timeout": "700 millis"})
        t0 = time.monotonic()
        result = proc.transform(ctx, InputFlowFile(b"img", {}))
        elapsed = time.monotonic() - t0

    got = result.getAttributes()
    assert result.getRelationship() == "failure"
    assert got["error.kind"] == "unavailable"
    assert got["error.retryable"] == "true"
    assert "0.7 s" in got["error.message"], got["error.message"]
    assert 0.6 <= elapsed < 3.0, f"Timeout 700 ms, the call took {elapsed:.2f}s"


def test_overloaded_node_is_a_retryable_failure(make_processor, pb):
    def busy(request, context):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "64 requests in flight")

    node = FakeNode(pb.pb2, busy)
    try:
        proc, ctx = make_processor(**{"Node Endpoint": node.address})
        result = proc.transform(ctx, InputFlowFile(b"img", {}))
    finally:
        node.stop()
    got = result.getAttributes()
    assert result.getRelationship() == "failure"
    assert got["error.kind"] == "overloaded"
    assert got["error.retryable"] == "true"
    assert "retry" in got["error.message"]
    assert ctx.yielded == 1


def test_content_over_the_message_limit_is_refused_before_sending(make_processor, pb):
    node = FakeNode(pb.pb2, lambda request, context: pb.pb2.ProcessResponse())
    try:
        proc, ctx = make_processor(**{"Node Endpoint": node.address, "Max Message Size": "1 KB"})
        result = proc.transform(ctx, InputFlowFile(b"x" * 2048, {}))
    finally:
        node.stop()
    assert result.getRelationship() == "failure"
    assert result.getAttributes()["error.kind"] == "too_large"
    assert result.getAttributes()["error.retryable"] == "false"
    assert node.requests == []


def test_named_relationships_and_new_content_pass_through(make_processor, pb):
    """A `route` node answers on a rule's relationship; a node may also rewrite content."""

    def confirm(request, context):
        ff = request.flow_file
        out = pb.pb2.FlowFile(uuid=ff.uuid, attributes={**ff.attributes, "priority": "1"},
                              content=b"re-encoded")
        extra = pb.pb2.FlowFile(uuid="other", content=b"overlay")
        return pb.pb2.ProcessResponse(outputs=[
            pb.pb2.Output(relationship="confirmed", flow_file=out),
            pb.pb2.Output(relationship="confirmed", flow_file=extra),
        ])

    node = FakeNode(pb.pb2, confirm)
    try:
        proc, ctx = make_processor(**{"Node Endpoint": node.address})
        flowfile = InputFlowFile(b"img", {"classify.label": "loose_wire"})
        result = proc.transform(ctx, flowfile)
    finally:
        node.stop()
    got = result.getAttributes()
    assert result.getRelationship() == "success"
    assert got["loupe.relationship"] == "confirmed"
    assert got["loupe.outputs"] == "2"
    assert got["priority"] == "1"
    assert result.getContents() == b"re-encoded"
    # The node saw NiFi's uuid (so retries de-duplicate) and every attribute by default.
    (request,) = node.requests
    assert request.flow_file.uuid == flowfile.getAttribute("uuid")
    assert request.flow_file.attributes["classify.label"] == "loose_wire"
    assert request.flow_file.entry_time_ms > 0


def test_bearer_token_reaches_a_node_that_asks_for_one(loupe_node, make_processor, tmp_path):
    """A real `loupe serve route` with `auth.tokens`: refused without the token, served with it."""
    token = "nifi-token-0123456789abcdef-0123"
    (tmp_path / "nifi.token").write_text(token + "\n")
    node = loupe_node(
        "route",
        settings={"rules": [{"name": "all", "when": "true"}]},
        config={"auth": {"tokens": [
            {"name": "nifi", "file": str(tmp_path / "nifi.token"), "rights": ["process"]},
        ]}},
    )
    proc, ctx = make_processor(**{"Node Endpoint": node.address})
    refused = proc.transform(ctx, InputFlowFile(b"img", {}))
    assert refused.getRelationship() == "failure"
    assert "token" in refused.getAttributes()["error.message"].lower() or \
        "credential" in refused.getAttributes()["error.message"].lower()

    proc, ctx = make_processor(**{"Node Endpoint": node.address, "Bearer Token": token})
    served = proc.transform(ctx, InputFlowFile(b"img", {}))
    assert served.getRelationship() != "failure", served.getAttributes()
    assert served.getAttributes()["route"] == "all"
