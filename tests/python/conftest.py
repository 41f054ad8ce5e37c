"""Fixtures for black-box tests of the `loupe` binary over gRPC.

The tests start the real binary (`$LOUPE_BIN`, default `<repo>/target/debug/loupe`)
as `loupe serve NODE_TYPE --config FILE --listen 127.0.0.1:0`, read the bound
address from the single `listening on HOST:PORT` line it prints on stdout, and
talk to it with grpcio. The loupe.v1 proto is compiled at test time with
grpc_tools.protoc, so nothing generated is checked in.

Everything is bounded in time: node start-up, every RPC (`RPC_TIMEOUT`), and
shutdown (SIGTERM, then SIGKILL after `STOP_TIMEOUT`).

Something a test needs and cannot find (the binary, the ONNX Runtime library, a Python
package, a service) goes through `missing()`: a failure in CI (`CI=true`, set by .ci/run),
where everything is installed on purpose and a missing thing must never pass silently; a
loud `SKIPPED: ...` on a newcomer's machine.
"""

from __future__ import annotations

import importlib
import importlib.resources
import importlib.util
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import NoReturn

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto"

MIB = 1024 * 1024
# The client must not be the one enforcing gRPC's 4 MiB default.
CLIENT_MAX_MESSAGE = 80 * MIB
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", CLIENT_MAX_MESSAGE),
    ("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE),
]

RPC_TIMEOUT = 10.0  # seconds, every small RPC
BIG_RPC_TIMEOUT = 60.0  # seconds, RPCs carrying tens of MiB (debug build, 2 cores)
START_TIMEOUT = 30.0  # until `listening on ...` and health SERVING
STOP_TIMEOUT = 10.0  # SIGTERM -> exit

# The ONNX Runtime that `ort` (load-dynamic) loads; pinned in tests/python/requirements.txt.
ORT_VERSION = "1.31.1"
ORT_LIB_NAME = f"libonnxruntime.so.{ORT_VERSION}"

LISTEN_RE = re.compile(r"^listening on (?P<addr>\S+:\d+)\s*$")

_node_counter = itertools.count(1)


def loupe_bin() -> Path:
    """Path of the binary under test: `$LOUPE_BIN`, else the debug build."""
    env = os.environ.get("LOUPE_BIN")
    return Path(env).resolve() if env else REPO / "target" / "debug" / "loupe"


# --------------------------------------------------------------------------
# Missing prerequisites: fail in CI, skip (loudly) elsewhere
# --------------------------------------------------------------------------


def in_ci() -> bool:
    """True under CI: the environment variable `CI` is exactly `true` (.ci/run exports it)."""
    return os.environ.get("CI") == "true"


def missing(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Stop the current test because something it needs is not there.

    `reason` says what is missing and how to get it. With `CI=true` this is `pytest.fail`:
    CI installs every library, service and browser on purpose, so a missing one is a broken
    setup, never a silent pass. Anywhere else it is `pytest.skip("SKIPPED: <reason>")`, which
    `tests/run` lists at the end (`-rs`). `allow_module_level=True` is for calls made while a
    test module is imported (see `require_module`); in CI that becomes a collection error.
    """
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(f"SKIPPED: {reason}", allow_module_level=allow_module_level)


def ort_dylib() -> str | None:
    """The ONNX Runtime library, or None: `$ORT_DYLIB_PATH` when set (None if it is not a
    file), else `ORT_LIB_NAME` in the importable onnxruntime package or in `<repo>/.venv`."""
    env = os.environ.get("ORT_DYLIB_PATH")
    if env:
        return env if Path(env).is_file() else None
    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        spec = None
    candidates = []
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "capi" / ORT_LIB_NAME)
    candidates += sorted(
        (REPO / ".venv").glob(f"lib/python3*/site-packages/onnxruntime/capi/{ORT_LIB_NAME}")
    )
    return next((str(c) for c in candidates if c.is_file()), None)


def require_ort(what: str) -> str:
    """Path of the ONNX Runtime library (`ort_dylib`) for `what` (e.g. "the `classify` node"),
    to pass to it as `ORT_DYLIB_PATH`; `missing()` (fail in CI, skip elsewhere) when absent."""
    ort = ort_dylib()
    if ort is None:
        env = os.environ.get("ORT_DYLIB_PATH")
        where = (
            f"ORT_DYLIB_PATH={env} is not a file"
            if env
            else f"no {ORT_LIB_NAME} in an importable onnxruntime or in {REPO / '.venv'}"
        )
        missing(
            f"ONNX Runtime library not found ({where}); {what} needs it "
            f"(set ORT_DYLIB_PATH, or run tests/run which installs onnxruntime=={ORT_VERSION} "
            "into .venv)"
        )
    return ort


def require_module(name: str, package: str) -> ModuleType:
    """`import name`, pinned as `package` in tests/python/requirements.txt (which tests/run
    installs into .venv); `missing()` when it cannot be imported. Usable at module level."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        error = err  # reported below, outside the handler: no chained traceback
    missing(
        f"Python module {name} cannot be imported ({error}); install {package} from "
        "tests/python/requirements.txt (tests/run does this in .venv)",
        allow_module_level=True,
    )


# --------------------------------------------------------------------------
# Session fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def loupe_bin_path() -> Path:
    """The binary under test (see `loupe_bin`); `missing()` when it is not there."""
    path = loupe_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(
            f"loupe binary not found at {path} (build it with `cargo build --bin loupe` "
            "or point LOUPE_BIN at it; tests/run does this for you)"
        )
    return path


@pytest.fixture(scope="session")
def pb(tmp_path_factory) -> SimpleNamespace:
    """The loupe.v1 proto compiled into a temp dir: `pb.pb2` (messages), `pb.grpc` (stubs)."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("proto_gen")
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    assert protos, f"no .proto files under {PROTO_DIR}"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    rc = protoc.main(args)
    assert rc == 0, f"grpc_tools.protoc failed (rc={rc}) on {protos}; see stderr above"
    # Stays on sys.path so that tests can import the other generated modules too
    # (`importlib.import_module("<package path>.<file>_pb2")`).
    sys.path.insert(0, str(out))
    pb2 = importlib.import_module("loupe.v1.loupe_pb2")
    pb2_grpc = importlib.import_module("loupe.v1.loupe_pb2_grpc")
    return SimpleNamespace(pb2=pb2, grpc=pb2_grpc, out_dir=out)


# --------------------------------------------------------------------------
# One running node
# --------------------------------------------------------------------------


class LoupeNode:
    """A `loupe serve` child process and a channel to it."""

    def __init__(
        self, bin_path: Path, node_type: str, workdir: Path, config: dict, extra_args, extra_env=None
    ):
        self.node_type = node_type
        n = next(_node_counter)
        self.name = f"{node_type}-{n}"
        self.workdir = workdir
        self.config_path = workdir / f"{self.name}.yaml"
        # JSON is valid YAML (flow style), so no YAML library is needed here.
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")
        self.stderr_path = workdir / f"{self.name}.stderr.log"
        self.stdout_lines: list[str] = []
        self.address: str | None = None
        self.channel: grpc.Channel | None = None
        self.cmd = [
            str(bin_path),
            "serve",
            node_type,
            "--config",
            str(self.config_path),
            "--listen",
            "127.0.0.1:0",
            *[str(a) for a in extra_args],
        ]
        # `LOUPE_*` variables are a configuration layer of `loupe serve` (they beat the
        # YAML file): drop the caller's so that the test alone decides the configuration.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(extra_env or {})
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            cwd=workdir,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    # -- process plumbing ---------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)  # EOF

    def diagnostics(self, max_chars: int = 6000) -> str:
        try:
            stderr = self.stderr_path.read_text(errors="replace")
        except OSError:
            stderr = ""
        if len(stderr) > max_chars:
            stderr = "...\n" + stderr[-max_chars:]
        return (
            f"command: {' '.join(self.cmd)}\n"
            f"exit code: {self.proc.poll()}\n"
            f"stdout: {self.stdout_lines[-20:]}\n"
            f"stderr:\n{stderr}"
        )

    def wait_listening(self, timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                pytest.fail(
                    f"`{self.name}` did not print 'listening on HOST:PORT' within {timeout}s\n"
                    + self.diagnostics()
                )
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT)
                pytest.fail(
                    f"`{self.name}` closed stdout before printing 'listening on HOST:PORT'\n"
                    + self.diagnostics()
                )
            m = LISTEN_RE.match(line)
            if m:
                self.address = m.group("addr")
                return self.address

    def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until health says SERVING; stop early if health is not implemented at all."""
        assert self.channel is not None
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
        stub = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"`{self.name}` exited while starting\n" + self.diagnostics())
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return  # the health test reports this properly
            time.sleep(0.05)
        # Not fatal here: the tests that need readiness fail with their own message.

    def start(self) -> "LoupeNode":
        self.wait_listening()
        self.channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self.wait_serving()
        return self

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait; returns the exit code, or None if it had to be killed."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        self.terminate()
        if self.channel is not None:
            self.channel.close()
        self._reader.join(timeout=2)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr_file.close()

    # -- conveniences ---------------------------------------------------------

    def processor(self, pb: SimpleNamespace):
        return pb.grpc.ProcessorStub(self.channel)

    def health(self):
        return health_pb2_grpc.HealthStub(self.channel)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def loupe_node(loupe_bin_path, tmp_path, request):
    """Factory: `loupe_node("report", settings={...}, config={...}, extra_args=[...], env={...})`.

    Starts `loupe serve` on 127.0.0.1:0, waits for the listening line and for
    health SERVING, and returns a `LoupeNode` (`.channel`, `.proc`, `.address`).
    Every node started is stopped at teardown (SIGTERM, then SIGKILL); when the
    test failed, the nodes' stderr is printed.
    """
    nodes: list[LoupeNode] = []

    def start(
        node_type: str,
        settings: dict | None = None,
        config: dict | None = None,
        extra_args=(),
        env: dict | None = None,
    ):
        cfg = dict(config or {})
        if settings is not None:
            cfg["settings"] = settings
        node = LoupeNode(loupe_bin_path, node_type, tmp_path, cfg, extra_args, env)
        nodes.append(node)
        return node.start()

    yield start

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for node in reversed(nodes):
        node.close()
        if failed:
            print(f"\n----- {node.name} -----\n{node.diagnostics()}")


@pytest.fixture
def report_node(loupe_node, tmp_path):
    """A `report` node writing JSON lines to `node.report_path`."""
    path = tmp_path / "report.jsonl"
    node = loupe_node("report", settings={"path": str(path)})
    node.report_path = path
    return node


@pytest.fixture
def channel(report_node) -> grpc.Channel:
    """A channel to a running `report` node."""
    return report_node.channel


# --------------------------------------------------------------------------
# Helpers shared by test modules
# --------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_lines(path: Path, count: int, timeout: float = 2.0) -> list[dict]:
    """Lines of a JSON-lines file once it has at least `count` (or whatever it has at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = read_jsonl(path)
        if len(lines) >= count or time.monotonic() >= deadline:
            return lines
        time.sleep(0.05)
