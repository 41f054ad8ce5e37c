"""NiFi's two ways into a served node, black-box against the real `loupe` binary.

- NiFi 1.x InvokeGRPC: `org.apache.nifi.processors.grpc.FlowFileService/Send`, called with
  stubs compiled at test time from `proto/nifi/flowfile_service.proto` (the `pb` fixture
  compiles every proto under `proto/`), gzip-compressed as NiFi's client may send it.
- NiFi 2.x InvokeHTTP: `POST /process` on the same port, with urllib.

The node is `classify` with the fixed-weight `models/tiny-classifier` (green -> ok, red ->
burr, blue -> loose_wire) on tiny PNGs written by hand, so the verdicts are known.
"""

from __future__ import annotations

import importlib
import json
import struct
import urllib.error
import urllib.request
import uuid
import zlib

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, REPO, RPC_TIMEOUT, require_ort

MODEL_DIR = REPO / "models" / "tiny-classifier"
NIFI_SERVICE = "org.apache.nifi.processors.grpc.FlowFileService"
GREEN = (20, 200, 30)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour 8-bit RGB PNG, written by hand (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    row = b"\x00" + bytes(rgb) * width  # filter type 0 (None) + pixels
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def nifi(pb):
    """NiFi's FlowFileService messages and stubs (compiled by the `pb` fixture)."""
    pb2 = importlib.import_module("nifi.flowfile_service_pb2")
    pb2_grpc = importlib.import_module("nifi.flowfile_service_pb2_grpc")
    return pb2, pb2_grpc


@pytest.fixture
def classify_node(loupe_node):
    return loupe_node(
        "classify",
        settings={"model": str(MODEL_DIR), "serving": {"reload_interval": "0s"}},
        env={"ORT_DYLIB_PATH": require_ort("the `classify` node")},
    )


def send(node, nifi, content: bytes, attributes: dict):
    """One InvokeGRPC-style call: gzip-compressed request, NiFi's attributes."""
    pb2, pb2_grpc = nifi
    with grpc.insecure_channel(
        node.address, options=CHANNEL_OPTIONS, compression=grpc.Compression.Gzip
    ) as channel:
        stub = pb2_grpc.FlowFileServiceStub(channel)
        reply = stub.Send(
            pb2.FlowFileRequest(id=7, attributes=attributes, content=content),
            timeout=RPC_TIMEOUT,
            compression=grpc.Compression.Gzip,
        )
    code = pb2.FlowFileReply.ResponseCode.Name(reply.responseCode)
    return code, json.loads(reply.body)


def post(node, content: bytes, headers: dict):
    """One InvokeHTTP-style call; returns (status, headers as a dict, body)."""
    request = urllib.request.Request(
        f"http://{node.address}/process", data=content, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=RPC_TIMEOUT) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def nifi_attributes(filename: str) -> dict:
    return {
        "uuid": str(uuid.uuid4()),
        "filename": filename,
        "path": "./",
        "camera.angle": "3",
    }


def test_send_gzip_success_with_verdict_in_body(classify_node, nifi):
    code, body = send(classify_node, nifi, png(24, 16, GREEN), nifi_attributes("green.png"))
    assert code == "SUCCESS", body
    assert body["relationship"] == "success"
    assert "error" not in body
    attrs = body["attributes"]
    assert attrs["classify.label"] == "ok", attrs
    assert float(attrs["classify.score"]) > 0.5
    assert attrs["classify.model"].startswith("tiny-classifier@")
    assert "filename" not in attrs, "only attributes the node added or changed"
    (output,) = body["outputs"]
    assert output["relationship"] == "success"
    assert output["size"] > 0
    assert output["attributes"] == attrs


def test_send_corrupt_image_is_error_with_reason(classify_node, nifi):
    code, body = send(
        classify_node, nifi, b"\x89PNG\r\n\x1a\n but truncated", nifi_attributes("bad.png")
    )
    assert code == "ERROR", body
    assert body["relationship"] == "failure"
    assert body["error"]["kind"] == "invalid_input", body
    assert body["error"]["message"]
    assert body["attributes"]["error.kind"] == "invalid_input"


def test_reflection_lists_nifi_service(classify_node):
    from grpc_reflection.v1alpha import reflection_pb2

    # v1 has v1alpha's messages under another package: only the method path differs.
    call = classify_node.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (resp,) = call(iter([request]), timeout=RPC_TIMEOUT)
    services = {s.name for s in resp.list_services_response.service}
    assert NIFI_SERVICE in services, services


def test_http_process_gives_the_same_verdict_as_grpc(classify_node, nifi):
    for rgb, label in [(GREEN, "ok"), ((210, 20, 20), "burr"), ((20, 30, 220), "loose_wire")]:
        image = png(20, 20, rgb)
        code, grpc_body = send(classify_node, nifi, image, nifi_attributes("part.png"))
        assert code == "SUCCESS", grpc_body

        status, headers, content = post(
            classify_node,
            image,
            {
                "Content-Type": "image/png",
                "filename": "part.png",
                "camera.angle": "3",
                "x-loupe-attr-line": "L1",
            },
        )
        assert status == 200, (status, headers, content)
        assert content == image, "classify passes the content through"
        assert headers["x-loupe-relationship"] == "success"
        assert headers["content-type"] == "image/png", "from the request's mime.type"
        for name in ("classify.label", "classify.score", "classify.scores", "classify.confident"):
            assert headers[name] == grpc_body["attributes"][name], (name, headers, grpc_body)
        assert headers["classify.label"] == label
        assert "filename" not in headers, "unchanged attributes are not sent back"


def test_http_corrupt_image_is_422_and_describe_health(classify_node):
    status, headers, content = post(
        classify_node, b"not an image at all", {"Content-Type": "image/png", "filename": "x.png"}
    )
    assert status == 422, (status, headers, content)
    assert headers["x-loupe-relationship"] == "failure"
    assert headers["error.kind"] == "invalid_input"
    assert content.decode().strip(), "the reason is the body"

    with urllib.request.urlopen(f"http://{classify_node.address}/health", timeout=RPC_TIMEOUT) as r:
        assert (r.status, r.read()) == (200, b"SERVING\n")
    with urllib.request.urlopen(
        f"http://{classify_node.address}/describe", timeout=RPC_TIMEOUT
    ) as r:
        described = json.loads(r.read())
    assert described["node_type"] == "classify"
    assert described["readiness"] == "READY"
    assert {"success", "failure"} <= {r["name"] for r in described["relationships"]}

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{classify_node.address}/nope", timeout=RPC_TIMEOUT)
    assert err.value.code == 404
