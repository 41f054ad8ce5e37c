"""OpenTelemetry traces cross every hop, checked with a real OTLP/gRPC receiver.

The test process runs a tiny OTLP trace receiver (grpcio, implementing
`opentelemetry.proto.collector.trace.v1.TraceService/Export`). A `report` node is served
by `loupe serve report`, and `loupe run --once` runs the flow

    camera (capture, in-process) -> classify (in-process) -> records (report, remote)

with both processes exporting to the receiver. Once both have exited (which flushes
their batch exporters) the test checks, for every FlowFile, that the served node's
`report process` span is in the same trace as the runner's `classify process` span, that
its parent is a span the runner exported (the `traceparent` gRPC metadata), and that the
report record carries the same trace id in its `traceparent` attribute.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time
import zlib
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from conftest import REPO, STOP_TIMEOUT, require_module, require_ort, wait_for_lines

otlp_trace = require_module(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2", "opentelemetry-proto"
)
otlp_trace_grpc = require_module(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc", "opentelemetry-proto"
)

MODEL_DIR = REPO / "models" / "tiny-classifier"

IMAGES = 5
RUN_TIMEOUT = 180.0  # `loupe run --once` on a debug build with ONNX Runtime, 2 cores
SPAN_WAIT = 15.0  # spans still arriving after the processes exited (should be ~0)

RUNNER_SERVICE = "loupe-run"
SERVED_SERVICE = "loupe-report"


# --------------------------------------------------------------------------
# The OTLP receiver
# --------------------------------------------------------------------------


def _any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Span:
    __slots__ = ("service", "name", "trace_id", "span_id", "parent_span_id", "attributes")

    def __init__(self, service: str, span) -> None:
        self.service = service
        self.name = span.name
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_span_id = span.parent_span_id.hex()
        self.attributes = {kv.key: _any_value(kv.value) for kv in span.attributes}

    def __repr__(self) -> str:
        return (
            f"<{self.service} {self.name!r} trace={self.trace_id} span={self.span_id} "
            f"parent={self.parent_span_id or '-'} uuid={self.attributes.get('flowfile.uuid')}>"
        )


class TraceReceiver(otlp_trace_grpc.TraceServiceServicer):
    """Collects every exported span, with the `service.name` of its resource."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self.requests = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        otlp_trace_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        assert self.port, "could not bind the OTLP receiver on 127.0.0.1"

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        spans = []
        for rs in request.resource_spans:
            res = {kv.key: _any_value(kv.value) for kv in rs.resource.attributes}
            service = str(res.get("service.name", ""))
            for ss in rs.scope_spans:
                spans.extend(Span(service, s) for s in ss.spans)
        with self._lock:
            self._spans.extend(spans)
            self.requests += 1
        return otlp_trace.ExportTraceServiceResponse()

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def start(self) -> "TraceReceiver":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=1).wait(timeout=5)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour 8-bit RGB PNG, written by hand (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width  # filter type 0 (None) + pixels
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def child_env(extra: dict) -> dict:
    """The caller's environment without LOUPE_* (configuration) and OTEL_* (telemetry)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LOUPE_") and not k.startswith("OTEL_")
    }
    env.setdefault("RUST_BACKTRACE", "1")
    env.update(extra)
    return env


def tail(path: Path, max_chars: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text if len(text) <= max_chars else "...\n" + text[-max_chars:]


def trace_id_of(traceparent: str) -> str:
    # W3C: version-traceid-spanid-flags
    parts = traceparent.split("-")
    assert len(parts) == 4 and len(parts[1]) == 32, f"malformed traceparent {traceparent!r}"
    return parts[1]


# --------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------


def test_trace_crosses_runner_and_served_node(loupe_bin_path, loupe_node, tmp_path, monkeypatch):
    ort = require_ort("the flow's `classify` node")
    assert (MODEL_DIR / "model.onnx").is_file(), f"model missing: {MODEL_DIR}"

    # The served node inherits os.environ (conftest): keep the caller's OTEL_* out of it.
    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(key)

    receiver = TraceReceiver().start()
    runner = None
    served = None
    runner_out = tmp_path / "run.stdout.log"
    runner_err = tmp_path / "run.stderr.log"
    try:
        otel_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }

        # -- the served report node ------------------------------------------
        report_path = tmp_path / "report.jsonl"
        served = loupe_node("report", settings={"path": str(report_path)}, env=otel_env)

        # -- the flow ------------------------------------------------------------
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        colours = [(20, 200, 30), (210, 20, 20), (20, 30, 220), (120, 120, 120), (0, 255, 0)]
        for i in range(IMAGES):
            (inbox / f"part-{i:04d}.png").write_bytes(png(16 + i, 12 + i, colours[i % len(colours)]))

        q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
        flow_path = tmp_path / "traced.yaml"
        flow_path.write_text(
            f"""\
name: traced
nodes:
  - id: camera
    type: capture
    settings:
      directory: {q(str(inbox))}
      pattern: "*.png"
      min_age: 50ms
  - id: classify
    type: classify
    settings:
      model: {q(str(MODEL_DIR))}
  - id: records
    type: report
    endpoint: {q("http://" + served.address)}
    auto_terminate: [failure]
connections:
  - from: camera.success
    to: classify
  - from: classify.success
    to: records
  - from: classify.failure
    to: records
"""
        )

        # -- the runner ------------------------------------------------------------
        cmd = [str(loupe_bin_path), "run", "--once", "--progress", "off", str(flow_path)]
        with open(runner_out, "wb") as out, open(runner_err, "wb") as err:
            runner = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=tmp_path,
                env=child_env({**otel_env, "ORT_DYLIB_PATH": ort}),
            )
            try:
                rc = runner.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"`{' '.join(cmd)}` did not finish within {RUN_TIMEOUT}s\n"
                    f"stderr:\n{tail(runner_err)}"
                )
        runner_diag = (
            f"command: {' '.join(cmd)}\nexit code: {rc}\n"
            f"stdout:\n{tail(runner_out)}\nstderr:\n{tail(runner_err)}"
        )
        assert rc == 0, f"loupe run failed\n{runner_diag}"

        records = wait_for_lines(report_path, IMAGES, timeout=5.0)
        assert len(records) == IMAGES, (
            f"expected {IMAGES} report records, got {len(records)}: {records}\n{runner_diag}"
        )

        # Both processes flush their batch exporters on exit.
        rc_served = served.terminate(timeout=STOP_TIMEOUT)
        assert rc_served == 0, (
            f"served report node did not exit cleanly on SIGTERM (rc={rc_served})\n"
            + served.diagnostics()
        )

        # -- the spans -------------------------------------------------------------
        uuids = {r["uuid"] for r in records}
        assert len(uuids) == IMAGES, records

        def wanted(spans):
            have = {
                (s.service, s.name, s.attributes.get("flowfile.uuid"))
                for s in spans
            }
            return all(
                (RUNNER_SERVICE, "classify process", u) in have
                and (SERVED_SERVICE, "report process", u) in have
                for u in uuids
            )

        deadline = time.monotonic() + SPAN_WAIT
        spans = receiver.spans()
        while not wanted(spans) and time.monotonic() < deadline:
            time.sleep(0.1)
            spans = receiver.spans()

        listing = "\n".join(f"  {s!r}" for s in spans) or "  (none)"
        context = (
            f"{len(spans)} span(s) in {receiver.requests} export request(s):\n{listing}\n"
            f"--- runner ---\n{runner_diag}\n--- served node ---\n{served.diagnostics()}"
        )

        services = {s.service for s in spans}
        assert RUNNER_SERVICE in services, f"no span from {RUNNER_SERVICE}\n{context}"
        assert SERVED_SERVICE in services, f"no span from {SERVED_SERVICE}\n{context}"

        runner_spans = [s for s in spans if s.service == RUNNER_SERVICE]
        runner_by_id = {s.span_id: s for s in runner_spans}

        def one(service: str, name: str, uid: str) -> Span:
            found = [
                s
                for s in spans
                if s.service == service
                and s.name == name
                and s.attributes.get("flowfile.uuid") == uid
            ]
            assert len(found) == 1, (
                f"expected one {name!r} span of {service} for FlowFile {uid}, got {found}\n{context}"
            )
            return found[0]

        by_uuid = {r["uuid"]: r for r in records}
        for uid in sorted(uuids):
            classify = one(RUNNER_SERVICE, "classify process", uid)
            report = one(SERVED_SERVICE, "report process", uid)

            assert report.trace_id == classify.trace_id, (
                f"FlowFile {uid}: served {report} is not in the trace of the runner's "
                f"{classify}\n{context}"
            )
            assert report.parent_span_id, (
                f"FlowFile {uid}: served {report} has no parent (gRPC traceparent ignored?)\n"
                f"{context}"
            )
            parent = runner_by_id.get(report.parent_span_id)
            assert parent is not None, (
                f"FlowFile {uid}: the parent {report.parent_span_id} of served {report} is not "
                f"a span the runner exported\n{context}"
            )
            assert parent.trace_id == report.trace_id, (parent, report)

            # Up the runner's chain from that parent, the classify span is an ancestor.
            chain = [parent]
            seen = {parent.span_id}
            while chain[-1].span_id != classify.span_id and chain[-1].parent_span_id:
                nxt = runner_by_id.get(chain[-1].parent_span_id)
                if nxt is None or nxt.span_id in seen:
                    break
                seen.add(nxt.span_id)
                chain.append(nxt)
            assert chain[-1].span_id == classify.span_id, (
                f"FlowFile {uid}: the runner-side ancestors of served {report} "
                f"({chain}) do not reach the runner's {classify}\n{context}"
            )

            traceparent = by_uuid[uid]["attributes"].get("traceparent")
            assert traceparent, (
                f"report record of {uid} has no traceparent attribute: {by_uuid[uid]}"
            )
            assert trace_id_of(traceparent) == classify.trace_id, (
                f"FlowFile {uid}: record traceparent {traceparent} is not in trace "
                f"{classify.trace_id}"
            )
    finally:
        if runner is not None and runner.poll() is None:
            runner.kill()
            try:
                runner.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        # Stop the served node while the receiver still answers, so that its shutdown flush
        # does not wait on a dead endpoint (the fixture's teardown then only closes it).
        if served is not None:
            served.terminate(timeout=STOP_TIMEOUT)
        receiver.stop()
