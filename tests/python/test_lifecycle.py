"""Process lifecycle: SIGTERM drains and exits 0."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

from conftest import RPC_TIMEOUT, STOP_TIMEOUT, wait_for_lines


def test_sigterm_exits_zero(report_node, pb):
    stub = report_node.processor(pb)
    ff = pb.pb2.FlowFile(uuid=str(uuid.uuid4()), attributes={"filename": "last.png"}, content=b"x")
    stub.Process(pb.pb2.ProcessRequest(flow_file=ff), timeout=RPC_TIMEOUT)

    # The channel stays open (as a runner's would): it must not hold the shutdown up.
    started = time.monotonic()
    report_node.proc.send_signal(signal.SIGTERM)
    try:
        code = report_node.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"still running {STOP_TIMEOUT}s after SIGTERM\n" + report_node.diagnostics()
        ) from None
    assert code == 0, f"exit code {code} after SIGTERM\n" + report_node.diagnostics()
    assert time.monotonic() - started < STOP_TIMEOUT

    # What was accepted before the signal is on disk.
    assert [l["uuid"] for l in wait_for_lines(report_node.report_path, 1, timeout=0)] == [ff.uuid]
