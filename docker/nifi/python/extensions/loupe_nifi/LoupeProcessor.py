"""LoupeProcessor: a NiFi 2.x Python processor that sends each FlowFile to a Loupe node.

It calls `loupe.v1.Processor/Process` on a node started with `loupe serve TYPE` (the node's
gRPC port) with the FlowFile's content and selected attributes, and routes by the answer:

- the node's output on a relationship other than `failure` -> `success`, with the output's
  attributes (`classify.label`, `classify.score`, ...), `loupe.relationship` (the node's
  relationship: `success`, or a `route` node's rule name such as `confirmed`) and
  `loupe.outputs` (how many FlowFiles the node emitted; the first one is passed on), and the
  output's content when it differs from the input's (`preprocess` re-encodes, `classify`
  does not);
- the node's `failure` output -> `failure`, with its `error.kind` / `error.message`;
- a transport error (node unreachable, timeout, overloaded, message too large) -> `failure`
  with `error.kind` (`unavailable`, `overloaded`, `too_large`, ...; the same kinds the
  node SDK uses), `error.message`, `error.node` (the endpoint) and `error.retryable`
  (`true` for `unavailable` / `overloaded`: route those back with a delay, e.g. through
  RetryFlowFile). On a retryable error the processor also yields, so NiFi backs off.

The incoming FlowFile goes to `original` as usual for FlowFileTransform processors.

Installation: copy this directory (`loupe_nifi/`, with `loupe_pb2.py` and `__init__.py`)
into NiFi's Python extensions directory (`nifi.python.extensions.source.directory.default`,
`./python/extensions` by default). NiFi pip-installs the `dependencies` below into the
processor's own environment the first time it is used. See docs/nifi.md.
"""

import re
import threading
import time

import grpc

from nifiapi.flowfiletransform import FlowFileTransform, FlowFileTransformResult
from nifiapi.properties import (
    DataUnit,
    ExpressionLanguageScope,
    PropertyDescriptor,
    StandardValidators,
    TimeUnit,
)

# The wire messages come from `loupe_pb2.py` beside this file, generated from
# proto/loupe/v1/loupe.proto by `docker/nifi/python/generate.sh` (a test checks it is up to
# date). Shipping the generated module, rather than compiling the .proto when the processor
# is imported, means NiFi installs only `grpcio` and `protobuf` (not `grpcio-tools` with its
# bundled protoc, ~10x larger) and there is no .proto file to find at run time. NiFi loads
# every module of a processor's package directory before the processor itself, under its
# file name, so `import loupe_pb2` works there as it does in the tests. Only messages are
# generated (no `_grpc.py` stub): the one RPC is called with `channel.unary_unary`, whose path
# comes from the generated service descriptor.
import loupe_pb2

_PROCESS = loupe_pb2.DESCRIPTOR.services_by_name["Processor"].methods_by_name["Process"]
PROCESS_METHOD = f"/{_PROCESS.containing_service.full_name}/{_PROCESS.name}"

# Error kinds, as the node SDK names them (nodes/sdk/src/error.rs).
RETRYABLE_KINDS = ("overloaded", "unavailable")
# Most channels kept open at once (one per endpoint).
MAX_CHANNELS = 32


class LoupeProcessor(FlowFileTransform):
    class Java:
        implements = ["org.apache.nifi.python.processor.FlowFileTransform"]

    class ProcessorDetails:
        version = "0.1.0"
        description = """Sends each FlowFile (content and the attributes matching 'Attributes to Send') to a Loupe node (loupe serve TYPE) over gRPC and routes by its answer. The node's output goes to success with its attributes (classify.label, classify.score, ...), loupe.relationship (the node's relationship, e.g. a route rule) and loupe.outputs; its content replaces the FlowFile's when the node changed it. A processing failure of the node, or a transport error (unreachable, timeout, overloaded), goes to failure with error.kind, error.message and error.retryable."""
        tags = ["loupe", "grpc", "inspection", "vision", "classify", "onnx", "remote"]
        # The same pins as tests/python/requirements.txt (a test checks it).
        dependencies = ["grpcio==1.85.1", "protobuf==7.36.2"]

    ENDPOINT = PropertyDescriptor(
        name="Node Endpoint",
        description=(
            "The Loupe node's gRPC address, host:port (its `loupe serve --listen` address, "
            "port 50051 in docker/compose.yaml), or http://host:port; https:// uses TLS "
            "with the system's trusted roots. One channel per endpoint is kept open."
        ),
        required=True,
        validators=[StandardValidators.NON_EMPTY_EL_VALIDATOR],
        expression_language_scope=ExpressionLanguageScope.FLOWFILE_ATTRIBUTES,
    )
    TIMEOUT = PropertyDescriptor(
        name="Timeout",
        description=(
            "Longest wait for the node's answer, connecting included. Past it the FlowFile "
            "goes to failure with error.kind=unavailable and error.retryable=true."
        ),
        required=True,
        default_value="30 secs",
        validators=[StandardValidators.TIME_PERIOD_VALIDATOR],
    )
    MAX_MESSAGE_SIZE = PropertyDescriptor(
        name="Max Message Size",
        description=(
            "Largest request and reply, content included. Keep it at or below the node's "
            "max_message_bytes (64 MB by default); gRPC's usual 4 MB rejects camera images."
        ),
        required=True,
        default_value="64 MB",
        validators=[StandardValidators.DATA_SIZE_VALIDATOR],
    )
    ATTRIBUTES_TO_SEND = PropertyDescriptor(
        name="Attributes to Send",
        description=(
            "Regular expression; the attributes whose whole name matches are sent with the "
            "content (the FlowFile's uuid always is, so a node that records FlowFiles "
            "de-duplicates NiFi's retries)."
        ),
        required=True,
        default_value=".*",
        validators=[StandardValidators.REGULAR_EXPRESSION_VALIDATOR],
    )
    COMPRESSION = PropertyDescriptor(
        name="Compression",
        description="Compression of the requests (the node accepts gzip).",
        required=True,
        default_value="gzip",
        allowable_values=["gzip", "none"],
    )

    TOKEN = PropertyDescriptor(
        name="Bearer Token",
        description=(
            "Sent as 'authorization: Bearer TOKEN' on every call: one of the node's "
            "auth.tokens with the 'process' right. Empty: no token (a node beyond loopback "
            "then refuses the calls)."
        ),
        required=False,
        sensitive=True,
        validators=[StandardValidators.NON_EMPTY_VALIDATOR],
    )
    CA_FILE = PropertyDescriptor(
        name="CA Certificate File",
        description=(
            "PEM CA certificate the node's certificate must chain to, for https:// endpoints "
            "(`loupe certs ca` makes one). Empty: the system's trusted roots."
        ),
        required=False,
        validators=[StandardValidators.FILE_EXISTS_VALIDATOR],
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.descriptors = [
            self.ENDPOINT,
            self.TIMEOUT,
            self.MAX_MESSAGE_SIZE,
            self.ATTRIBUTES_TO_SEND,
            self.COMPRESSION,
            self.TOKEN,
            self.CA_FILE,
        ]
        # (target, max bytes, compression) -> (channel, callable). NiFi may run `transform`
        # on several threads at once: the lock guards the cache, a channel is thread-safe.
        self._channels = {}
        self._lock = threading.Lock()
        self._patterns = {}

    def getPropertyDescriptors(self):
        return self.descriptors

    def onStopped(self, context):
        self.close()

    def close(self):
        """Closes every cached channel (NiFi calls onStopped when the processor stops)."""
        with self._lock:
            channels, self._channels = self._channels, {}
        for channel, _ in channels.values():
            channel.close()

    # -- the call ---------------------------------------------------------------

    def _process_call(self, target, secure, max_bytes, compression, ca_file):
        key = (target, secure, max_bytes, compression, ca_file)
        with self._lock:
            cached = self._channels.get(key)
            if cached is None:
                options = [
                    ("grpc.max_send_message_length", max_bytes),
                    ("grpc.max_receive_message_length", max_bytes),
                    ("grpc.primary_user_agent", "loupe-nifi/" + self.ProcessorDetails.version),
                ]
                comp = grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
                if secure:
                    roots = None
                    if ca_file:
                        with open(ca_file, "rb") as f:
                            roots = f.read()
                    channel = grpc.secure_channel(
                        target,
                        grpc.ssl_channel_credentials(root_certificates=roots),
                        options=options,
                        compression=comp,
                    )
                else:
                    channel = grpc.insecure_channel(target, options=options, compression=comp)
                call = channel.unary_unary(
                    PROCESS_METHOD,
                    request_serializer=loupe_pb2.ProcessRequest.SerializeToString,
                    response_deserializer=loupe_pb2.ProcessResponse.FromString,
                )
                cached = self._channels[key] = (channel, call)
                # An endpoint from Expression Language may vary per FlowFile: keep the
                # most recently opened channels only.
                while len(self._channels) > MAX_CHANNELS:
                    oldest = next(iter(self._channels))
                    self._channels.pop(oldest)[0].close()
        return cached[1]

    def _pattern(self, text):
        p = self._patterns.get(text)
        if p is None:
            p = self._patterns[text] = re.compile(text)
        return p

    def transform(self, context, flowfile):
        endpoint = (
            context.getProperty(self.ENDPOINT).evaluateAttributeExpressions(flowfile).getValue()
            or ""
        ).strip()
        timeout_s = context.getProperty(self.TIMEOUT).asTimePeriod(TimeUnit.MILLISECONDS) / 1000.0
        max_bytes = int(context.getProperty(self.MAX_MESSAGE_SIZE).asDataSize(DataUnit.B))
        pattern = self._pattern(context.getProperty(self.ATTRIBUTES_TO_SEND).getValue())
        compression = context.getProperty(self.COMPRESSION).getValue()
        token = (context.getProperty(self.TOKEN).getValue() or "").strip()
        ca_file = (context.getProperty(self.CA_FILE).getValue() or "").strip()
        metadata = [("authorization", "Bearer " + token)] if token else None

        target, secure = _target(endpoint)
        if not target:
            return _transport_failure(
                "invalid_input", f"'Node Endpoint' is empty (evaluated from {endpoint!r})", endpoint
            )

        attributes = dict(flowfile.getAttributes())
        content = bytes(flowfile.getContentsAsBytes() or b"")
        # The request adds the attributes and a few bytes of framing to the content.
        if len(content) > max_bytes:
            return _transport_failure(
                "too_large",
                f"content of {len(content)} bytes is over 'Max Message Size' ({max_bytes} bytes)",
                endpoint,
            )

        now_ms = int(time.time() * 1000)
        request = loupe_pb2.ProcessRequest(
            flow_file=loupe_pb2.FlowFile(
                uuid=attributes.get("uuid", ""),
                attributes={k: v for k, v in attributes.items() if pattern.fullmatch(k)},
                content=content,
                entry_time_ms=now_ms,
                lineage_start_ms=now_ms,
            )
        )
        try:
            call = self._process_call(target, secure, max_bytes, compression, ca_file)
            reply = call(request, timeout=timeout_s, metadata=metadata)
        except grpc.RpcError as err:
            kind, message = _classify_rpc_error(err, endpoint, timeout_s)
            result = _transport_failure(kind, message, endpoint)
            if kind in RETRYABLE_KINDS:
                # Let NiFi back off (the processor's Yield Duration) instead of hammering
                # a node that is down or busy.
                yield_resources = getattr(context, "yield_resources", None)
                if callable(yield_resources):
                    yield_resources()
            logger = getattr(self, "logger", None)
            if logger is not None:
                logger.warn(f"Loupe node {endpoint}: {kind}: {message}")
            return result

        return _result(reply, content)


# --------------------------------------------------------------------------
# Helpers (module level so that they are testable without a processor)
# --------------------------------------------------------------------------


def _target(endpoint):
    """`host:port` (or `http://host:port`, `https://host:port`) -> (gRPC target, TLS?)."""
    e = endpoint.strip()
    secure = False
    if e.startswith("http://"):
        e = e[len("http://"):]
    elif e.startswith("https://"):
        e, secure = e[len("https://"):], True
    return e.rstrip("/"), secure


def _transport_failure(kind, message, endpoint):
    return FlowFileTransformResult(
        "failure",
        attributes={
            "error.kind": kind,
            "error.message": message,
            "error.node": endpoint,
            "error.retryable": "true" if kind in RETRYABLE_KINDS else "false",
        },
    )


def _classify_rpc_error(err, endpoint, timeout_s):
    """A gRPC error -> (error.kind, error.message), as the node SDK maps statuses."""
    code = err.code() if callable(getattr(err, "code", None)) else None
    details = (err.details() if callable(getattr(err, "details", None)) else None) or str(err)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if "larger than max" in details:  # gRPC's own size limit, here or at the node
            return "too_large", f"message over the size limit: {details}"
        return "overloaded", f"node {endpoint} is overloaded, retry later: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "unavailable", f"no answer from node {endpoint} within {timeout_s:g} s"
    if code == grpc.StatusCode.UNAVAILABLE:
        return "unavailable", f"node {endpoint} is unreachable or shutting down: {details}"
    if code in (grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED):
        return "unavailable", f"call to node {endpoint} was interrupted: {details}"
    if code == grpc.StatusCode.OUT_OF_RANGE:
        return "too_large", details
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        return "invalid_input", details
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "internal", f"{endpoint} does not serve {PROCESS_METHOD}: is it a Loupe node? ({details})"
    name = code.name if code is not None else "error"
    return "internal", f"node {endpoint} answered {name}: {details}"


def _result(reply, sent_content):
    """The node's ProcessResponse -> one FlowFileTransformResult."""
    outputs = list(reply.outputs)
    for out in outputs:
        if out.relationship == "failure":
            attrs = {k: v for k, v in out.flow_file.attributes.items() if k != "uuid"}
            attrs["loupe.relationship"] = "failure"
            attrs.setdefault("error.retryable", "false")
            return FlowFileTransformResult("failure", attributes=attrs)
    if not outputs:
        # The node kept the FlowFile (nothing to pass on): success, unchanged, and says so.
        return FlowFileTransformResult("success", attributes={"loupe.outputs": "0"})
    first = outputs[0]
    attrs = {k: v for k, v in first.flow_file.attributes.items() if k != "uuid"}
    attrs["loupe.relationship"] = first.relationship
    attrs["loupe.outputs"] = str(len(outputs))
    content = first.flow_file.content
    return FlowFileTransformResult(
        "success", attributes=attrs, contents=None if content == sent_content else bytes(content)
    )
