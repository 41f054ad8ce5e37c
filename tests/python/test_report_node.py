"""Process through a `report` node (a JSON-lines sink), including message-size limits."""

from __future__ import annotations

import time
import uuid

import grpc

from conftest import BIG_RPC_TIMEOUT, MIB, RPC_TIMEOUT, read_jsonl, wait_for_lines


def flow_file(pb, content=b"", attributes=None, uid=None):
    now_ms = int(time.time() * 1000)
    return pb.pb2.FlowFile(
        uuid=uid or str(uuid.uuid4()),
        attributes=attributes or {},
        content=content,
        entry_time_ms=now_ms,
        lineage_start_ms=now_ms,
    )


def process(node, pb, ff, timeout=RPC_TIMEOUT):
    return node.processor(pb).Process(pb.pb2.ProcessRequest(flow_file=ff), timeout=timeout)


def failures(resp):
    return [
        dict(o.flow_file.attributes) for o in resp.outputs if o.relationship == "failure"
    ]


def test_process_writes_one_line_and_dedupes_uuid(report_node, pb):
    attrs = {"filename": "part-0001.png", "camera": "cam-7", "mime.type": "image/png"}
    content = b"\x89PNG not really" * 10
    ff = flow_file(pb, content, attrs)

    resp = process(report_node, pb, ff)
    assert list(resp.outputs) == [], f"a report sink returns no outputs on success: {resp}"

    lines = wait_for_lines(report_node.report_path, 1)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["uuid"] == ff.uuid
    for k, v in attrs.items():
        assert line["attributes"].get(k) == v, (k, line["attributes"])
    assert line["size"] == len(content)
    assert isinstance(line["time_ms"], int) and line["time_ms"] > 0

    # The same FlowFile delivered again (a retry) must not be reported twice.
    again = process(report_node, pb, ff)
    assert failures(again) == [], again
    time.sleep(0.3)
    assert len(read_jsonl(report_node.report_path)) == 1, read_jsonl(report_node.report_path)

    # ... while another uuid is.
    other = flow_file(pb, b"x", {"filename": "part-0002.png"})
    assert list(process(report_node, pb, other).outputs) == []
    lines = wait_for_lines(report_node.report_path, 2)
    assert [l["uuid"] for l in lines] == [ff.uuid, other.uuid]


def test_message_size_limits(report_node, pb):
    desc = report_node.processor(pb).Describe(pb.pb2.DescribeRequest(), timeout=RPC_TIMEOUT)
    if desc.max_message_bytes:
        assert 5 * MIB < desc.max_message_bytes < 70 * MIB, desc.max_message_bytes

    # 5 MiB: above gRPC's 4 MiB default, must be accepted.
    chunk = bytes(range(256))
    five = flow_file(pb, chunk * (5 * MIB // len(chunk)), {"filename": "big.raw"})
    resp = process(report_node, pb, five, timeout=BIG_RPC_TIMEOUT)
    assert failures(resp) == []
    lines = wait_for_lines(report_node.report_path, 1)
    assert [(l["uuid"], l["size"]) for l in lines] == [(five.uuid, 5 * MIB)]

    # 70 MiB: refused by the server with a gRPC status, not a crash.
    seventy = flow_file(pb, chunk * (70 * MIB // len(chunk)), {"filename": "huge.raw"})
    try:
        process(report_node, pb, seventy, timeout=BIG_RPC_TIMEOUT)
    except grpc.RpcError as err:
        assert err.code() in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.OUT_OF_RANGE,
        ), f"{err.code()}: {err.details()}"
    else:
        raise AssertionError("a 70 MiB message was accepted")
    del seventy

    assert report_node.proc.poll() is None, "node died on an oversized message\n" + report_node.diagnostics()
    small = flow_file(pb, b"ok", {"filename": "after.raw"})
    assert list(process(report_node, pb, small).outputs) == []
    lines = wait_for_lines(report_node.report_path, 2)
    assert [l["uuid"] for l in lines] == [five.uuid, small.uuid]
