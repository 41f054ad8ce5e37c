"""The four ways NiFi calls Loupe get the same verdict for the same image from the same node.

One `loupe serve classify` with the shipped coil classifier; real coil photos from
`loupe synth coils`; then, per photo:

1. NiFi 1.x InvokeGRPC: `org.apache.nifi.processors.grpc.FlowFileService/Send` (our proto,
   compiled by the `pb` fixture), gzip, reply body JSON;
2. NiFi 2.x InvokeHTTP: `POST /process` on the same port, verdict in the response headers;
3. the NiFi 2.x Python processor (docker/nifi/python/extensions/loupe_nifi, with the nifiapi
   stand-in), verdict in the result's attributes;
4. ExecuteStreamCommand: `loupe call ENDPOINT --output json`, a new process per FlowFile.

All four must give the same `classify.label`, `classify.score` and `classify.scores`.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import urllib.parse
import urllib.request

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, REPO, RPC_TIMEOUT, require_ort
from nifiapi.properties import ProcessContext
from test_nifi_python_processor import InputFlowFile

MODEL_DIR = REPO / "models" / "coil-classifier"
EXT_DIR = REPO / "docker" / "nifi" / "python" / "extensions" / "loupe_nifi"
VERDICT = ("classify.label", "classify.score", "classify.scores")


@pytest.fixture(scope="module")
def photos(loupe_bin_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("coils")
    subprocess.run(
        [str(loupe_bin_path), "synth", "coils", "--products", "4", "--seed", "11", "--loose-wire", "0.5", "--burr", "0.4", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    # Photos of different kinds, so equal answers are not equal by accident.
    chosen, seen = [], set()
    for record in manifest:
        if record["label"] not in seen:
            seen.add(record["label"])
            chosen.append((record["file"], (out / record["file"]).read_bytes()))
    assert len(chosen) >= 2, f"seed 11 should give photos of several kinds: {seen}"
    return chosen


@pytest.fixture
def node(loupe_node):
    return loupe_node(
        "classify",
        settings={"model": str(MODEL_DIR), "serving": {"reload_interval": "0s"}},
        env={"ORT_DYLIB_PATH": require_ort("the `classify` node")},
    )


def via_invoke_grpc(node, content: bytes, name: str) -> dict:
    pb2 = importlib.import_module("nifi.flowfile_service_pb2")
    pb2_grpc = importlib.import_module("nifi.flowfile_service_pb2_grpc")
    with grpc.insecure_channel(node.address, options=CHANNEL_OPTIONS, compression=grpc.Compression.Gzip) as ch:
        reply = pb2_grpc.FlowFileServiceStub(ch).Send(
            pb2.FlowFileRequest(id=1, attributes={"filename": name, "path": "./"}, content=content),
            timeout=RPC_TIMEOUT,
        )
    assert pb2.FlowFileReply.ResponseCode.Name(reply.responseCode) == "SUCCESS", reply.body
    return json.loads(reply.body)["attributes"]


def via_invoke_http(node, content: bytes, name: str) -> dict:
    request = urllib.request.Request(
        f"http://{node.address}/process",
        data=content,
        headers={"filename": name, "content-type": "image/png"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=RPC_TIMEOUT) as response:
        assert response.status == 200
        assert response.headers["x-loupe-relationship"] == "success"
        encoded = set(filter(None, (response.headers.get("x-loupe-encoded-attributes") or "").split(",")))
        headers = {k.lower(): v for k, v in response.headers.items()}
    out = {}
    for key in VERDICT:
        value = headers[key]
        out[key] = urllib.parse.unquote(value) if key in encoded else value
    return out


def via_python_processor(processor, content: bytes, name: str) -> dict:
    proc, ctx = processor
    result = proc.transform(ctx, InputFlowFile(content, {"filename": name}))
    assert result.getRelationship() == "success", result.getAttributes()
    return result.getAttributes()


def via_loupe_call(loupe_bin_path, node, content: bytes) -> dict:
    done = subprocess.run(
        [str(loupe_bin_path), "call", node.address, "--output", "json", "--timeout", "30"],
        input=content,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)["outputs"][0]["attributes"]


def test_all_four_nifi_routes_give_the_same_verdict(node, photos, pb, loupe_bin_path):
    from test_nifi_python_processor import load_module

    for dep in sorted(EXT_DIR.glob("*.py")):
        if dep.name not in ("__init__.py", "LoupeProcessor.py"):
            load_module(dep.stem, dep)
    module = load_module("LoupeProcessor", EXT_DIR / "LoupeProcessor.py")
    proc = module.LoupeProcessor()
    ctx = ProcessContext(proc.getPropertyDescriptors(), {"Node Endpoint": node.address}, name="LoupeProcessor")
    proc.setContext(ctx)
    labels = set()
    try:
        for name, content in photos:
            answers = {
                "InvokeGRPC": via_invoke_grpc(node, content, name),
                "InvokeHTTP": via_invoke_http(node, content, name),
                "Python processor": via_python_processor((proc, ctx), content, name),
                "loupe call": via_loupe_call(loupe_bin_path, node, content),
            }
            verdicts = {way: {k: a.get(k) for k in VERDICT} for way, a in answers.items()}
            first = verdicts["InvokeGRPC"]
            assert first["classify.label"] in ("ok", "burr", "loose_wire"), first
            for way, verdict in verdicts.items():
                assert verdict == first, f"{name}: {way} says {verdict}, InvokeGRPC says {first}"
            labels.add(first["classify.label"])
    finally:
        proc.onStopped(ctx)
    assert len(labels) >= 2, f"the photos should not all get one label: {labels}"
