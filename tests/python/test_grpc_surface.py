"""What every node serves besides its work: health, reflection, Describe."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from conftest import RPC_TIMEOUT

PROCESSOR = "loupe.v1.Processor"
HEALTH = "grpc.health.v1.Health"


# ---------------------------------------------------------------- health


@pytest.mark.parametrize("service", ["", PROCESSOR])
def test_health_serving(report_node, service):
    resp = report_node.health().Check(
        health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT
    )
    assert resp.status == health_pb2.HealthCheckResponse.SERVING, (
        f"health of {service!r}: {health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)}"
    )


# ------------------------------------------------------------ reflection
#
# grpcio-reflection only ships the v1alpha stubs; v1 has the same messages
# (same field numbers) under another package, so the v1alpha classes are used
# for both and only the method path differs.


def reflect(channel, requests, version="v1"):
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    responses = list(call(iter(requests), timeout=RPC_TIMEOUT))
    assert len(responses) == len(requests)
    for r in responses:
        assert not r.HasField("error_response"), (
            f"reflection error {r.error_response.error_code}: {r.error_response.error_message}"
        )
    return responses


def list_services(channel, version):
    (resp,) = reflect(channel, [reflection_pb2.ServerReflectionRequest(list_services="")], version)
    return {s.name for s in resp.list_services_response.service}


def test_reflection_v1_lists_services(channel):
    services = list_services(channel, "v1")
    assert PROCESSOR in services, services
    assert HEALTH in services, services


def test_reflection_v1_describes_processor(channel):
    (resp,) = reflect(
        channel, [reflection_pb2.ServerReflectionRequest(file_containing_symbol=PROCESSOR)]
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in resp.file_descriptor_response.file_descriptor_proto
    ]
    services = {
        f"{f.package}.{s.name}": s for f in files for s in f.service
    }
    assert PROCESSOR in services, f"services in the returned files: {sorted(services)}"
    methods = {m.name: m for m in services[PROCESSOR].method}
    assert {"Describe", "Process", "ProcessStream"} <= set(methods), sorted(methods)
    assert methods["ProcessStream"].client_streaming and methods["ProcessStream"].server_streaming
    assert not methods["Process"].client_streaming and not methods["Process"].server_streaming


def test_reflection_v1alpha_if_served(channel):
    try:
        services = list_services(channel, "v1alpha")
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("server reflection v1alpha not served (v1 is)")
        raise
    assert PROCESSOR in services, services


# -------------------------------------------------------------- Describe


def test_describe_report(report_node, pb):
    desc = report_node.processor(pb).Describe(pb.pb2.DescribeRequest(), timeout=RPC_TIMEOUT)
    assert desc.node_type == "report"
    assert desc.version, "version must be set"
    relationships = {r.name for r in desc.relationships}
    assert "failure" in relationships, relationships
    assert all(r.description for r in desc.relationships), "every relationship needs a description"
    assert desc.readiness == pb.pb2.READINESS_READY
    assert not desc.is_source
    schema = json.loads(desc.settings_schema)
    assert isinstance(schema, dict), schema
    if "properties" in schema:
        assert "path" in schema["properties"], schema["properties"]
