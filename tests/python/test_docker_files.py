"""docker/: the compose set-up and the node configurations it serves, checked without Docker.

No Docker engine runs on the development machines, so this reads the files instead:
docker/compose.yaml has a `loupe-<id>` service for every node of flows/loose-wire-recheck.yaml
(serving docker/nodes/<id>.yaml on port 50051 and exporting traces to the collector), the
services those nodes need, and only references files that exist; the node configurations carry
the flow's settings and pass the flow compiler's checks (`loupe validate` of a flow built from
them); docker/flows/loose-wire-recheck.yaml (what `loupe-runner` runs) is the original flow
with endpoints.

PyYAML is not a test dependency, so `read_yaml` below reads the block-style subset these files
are written in (mappings, sequences, plain/quoted scalars, one-line flow collections); it
refuses anything else (anchors, tags, multi-line scalars, tabs) rather than guess.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

DOCKER = REPO / "docker"
FLOW = REPO / "flows" / "loose-wire-recheck.yaml"
RUNNER_FLOW = DOCKER / "flows" / "loose-wire-recheck.yaml"
SERVE_KEYS = {
    "listen", "node_id", "max_message_bytes", "max_in_flight", "drain_timeout", "settings",
    "tls", "auth", "insecure",
}
OTLP = "http://otel-collector:4317"


# --------------------------------------------------------------------------
# A small YAML reader (block style subset)
# --------------------------------------------------------------------------


class YamlError(ValueError):
    pass


def _strip_comment(text: str) -> str:
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'" and (i == 0 or text[i - 1] in " [{,:-"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _resolve(plain: str):
    if plain in ("", "~", "null", "Null", "NULL"):
        return None
    if plain in ("true", "True", "TRUE"):
        return True
    if plain in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?[0-9]+", plain):
        return int(plain)
    if re.fullmatch(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", plain):
        return float(plain)
    if plain[0] in "&*!|>%@`":
        raise YamlError(f"unsupported YAML construct: {plain!r}")
    return plain


class _Flow:
    """One-line flow collections: `[a, "b"]`, `{ k: v, k2: [1, 2] }`."""

    def __init__(self, text: str):
        self.s, self.i = text, 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def value(self, stops: str):
        self.ws()
        ch = self.s[self.i] if self.i < len(self.s) else ""
        if ch == "[":
            self.i += 1
            items = []
            self.ws()
            if self.s[self.i] == "]":
                self.i += 1
                return items
            while True:
                items.append(self.value(",]"))
                self.ws()
                ch = self.s[self.i]
                self.i += 1
                if ch == "]":
                    return items
                if ch != ",":
                    raise YamlError(f"bad flow sequence: {self.s!r}")
        if ch == "{":
            self.i += 1
            out = {}
            self.ws()
            if self.s[self.i] == "}":
                self.i += 1
                return out
            while True:
                key = self.value(":")
                if self.s[self.i] != ":":
                    raise YamlError(f"bad flow mapping: {self.s!r}")
                self.i += 1
                out[key] = self.value(",}")
                self.ws()
                ch = self.s[self.i]
                self.i += 1
                if ch == "}":
                    return out
                if ch != ",":
                    raise YamlError(f"bad flow mapping: {self.s!r}")
        if ch in "\"'":
            end = self.s.index(ch, self.i + 1)
            while ch == "'" and self.s[end + 1 : end + 2] == "'":
                end = self.s.index(ch, end + 2)
            token, self.i = self.s[self.i : end + 1], end + 1
            return _scalar(token)
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in stops:
            self.i += 1
        return _resolve(self.s[start : self.i].strip())


def _scalar(text: str):
    text = text.strip()
    if not text:
        return None
    if text[0] == '"':
        if not text.endswith('"') or len(text) < 2:
            raise YamlError(f"unterminated string: {text!r}")
        return json.loads(text)  # YAML's double-quoted escapes used here are JSON's
    if text[0] == "'":
        if not text.endswith("'") or len(text) < 2:
            raise YamlError(f"unterminated string: {text!r}")
        return text[1:-1].replace("''", "'")
    if text[0] in "[{":
        f = _Flow(text)
        v = f.value("")
        f.ws()
        if f.i != len(text):
            raise YamlError(f"trailing text after flow collection: {text!r}")
        return v
    return _resolve(text)


def _split_key(text: str):
    """`key: value` -> (key, value); None when the line is not a mapping entry."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'" and i == 0:
            quote = ch
        elif ch == ":" and (i + 1 == len(text) or text[i + 1] == " "):
            if text[0] in "[{":
                return None
            return _scalar(text[:i]), text[i + 1 :].strip()
    return None


def read_yaml(path: Path):
    lines = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlError(f"{path}:{n}: tab in indentation")
        text = _strip_comment(raw)
        if text.strip() in ("---",):
            continue
        if text.strip():
            lines.append([len(text) - len(text.lstrip()), text.strip(), n])

    def block(i: int, indent: int):
        if lines[i][1].startswith("- ") or lines[i][1] == "-":
            return sequence(i, indent)
        return mapping(i, indent)

    def nested(i: int, indent: int, value: str, n: int):
        """The value of `key:` or `- `: inline, or the block below."""
        if value:
            if value[0] in "|>":
                raise YamlError(f"{path}:{n}: block scalars are not supported")
            return _scalar(value), i
        if i < len(lines) and (
            lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))
        ):
            return block(i, lines[i][0])
        return None, i

    def mapping(i: int, indent: int):
        out = {}
        while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
            _, text, n = lines[i]
            kv = _split_key(text)
            if kv is None:
                raise YamlError(f"{path}:{n}: expected `key: value`, got {text!r}")
            key, value = kv
            if key in out:
                raise YamlError(f"{path}:{n}: duplicate key {key!r}")
            out[key], i = nested(i + 1, indent, value, n)
        if i < len(lines) and lines[i][0] > indent:
            raise YamlError(f"{path}:{lines[i][2]}: unexpected indentation")
        return out, i

    def sequence(i: int, indent: int):
        out = []
        while i < len(lines) and lines[i][0] == indent and (
            lines[i][1].startswith("- ") or lines[i][1] == "-"
        ):
            _, text, n = lines[i]
            rest = text[1:].strip()
            if rest and _split_key(rest) is not None and rest[0] not in "[{\"'":
                # `- key: value` opens a mapping whose keys sit two columns in.
                lines[i] = [indent + 2, rest, n]
                item, i = mapping(i, indent + 2)
            else:
                item, i = nested(i + 1, indent, rest, n)
            out.append(item)
        return out, i

    if not lines:
        return None
    value, i = block(0, lines[0][0])
    if i != len(lines):
        raise YamlError(f"{path}:{lines[i][2]}: unexpected content {lines[i][1]!r}")
    return value


def test_the_reader_reads_what_it_claims(tmp_path):
    text = """\
# comment
a: 1
b: "x # not a comment"   # a comment
c: 'it''s'
d: [one, "two", 3]
e: { objects: 64, bytes: 64 MB }
f:
  - id: camera
    settings:
      pattern: "*.png"
      attributes: { line: L1 }
  - plain item
g:
- 1
- true
h: {}
i:
"""
    p = tmp_path / "check.yaml"
    p.write_text(text)
    assert read_yaml(p) == {
        "a": 1,
        "b": "x # not a comment",
        "c": "it's",
        "d": ["one", "two", 3],
        "e": {"objects": 64, "bytes": "64 MB"},
        "f": [{"id": "camera", "settings": {"pattern": "*.png", "attributes": {"line": "L1"}}},
              "plain item"],
        "g": [1, True],
        "h": {},
        "i": None,
    }
    p.write_text("a: &x 1\nb: *x\n")
    with pytest.raises(YamlError):
        read_yaml(p)


# --------------------------------------------------------------------------
# The files
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose():
    return read_yaml(DOCKER / "compose.yaml")


@pytest.fixture(scope="module")
def flow():
    return read_yaml(FLOW)


@pytest.fixture(scope="module")
def node_configs(flow):
    return {n["id"]: read_yaml(DOCKER / "nodes" / f"{n['id']}.yaml") for n in flow["nodes"]}


def mounts(service) -> dict[str, str]:
    """container path -> host path of a service's volumes (short syntax)."""
    out = {}
    for v in service.get("volumes", []):
        parts = v.split(":")
        host, container = parts[0], parts[1]
        if v.startswith("${"):  # ${VAR:-default}:/path
            m = re.match(r"^(\$\{[^}]*\}):([^:]+)", v)
            host, container = m.group(1), m.group(2)
        out[container] = host
    return out


def test_compose_has_a_service_per_flow_node(compose, flow, node_configs):
    services = compose["services"]
    assert flow["nodes"], "flows/loose-wire-recheck.yaml has no nodes?"
    for node in flow["nodes"]:
        name = f"loupe-{node['id']}"
        assert name in services, f"docker/compose.yaml has no service {name}"
        svc = services[name]
        config = f"/etc/loupe/nodes/{node['id']}.yaml"
        assert svc["command"] == ["serve", node["type"], "--config", config], svc["command"]
        assert mounts(svc).get("/etc/loupe/nodes") == "./nodes"
        assert svc["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTLP
        assert svc["environment"]["OTEL_SERVICE_NAME"] == name
        assert svc["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}

        cfg = node_configs[node["id"]]
        assert set(cfg) <= SERVE_KEYS, f"docker/nodes/{node['id']}.yaml: unknown keys"
        assert cfg["listen"] == "0.0.0.0:50051"
        assert cfg["node_id"] == node["id"]
        # Beyond loopback: TLS and tokens (made by loupe-certs), never `insecure`.
        assert cfg["tls"] == {"cert": f"/tls/{name}.crt", "key": f"/tls/{name}.key"}
        tokens = {t["name"]: t for t in cfg["auth"]["tokens"]}
        assert tokens["runner"]["rights"] == ["process", "source"]
        assert tokens["nifi"]["rights"] == ["process"], "NiFi may process, never pull or ack"
        assert "insecure" not in cfg
        assert mounts(svc)["/tls"] == "loupe-tls"
        assert svc["depends_on"]["loupe-certs"]["condition"] == "service_completed_successfully"
        assert "https://localhost:50051" in svc["healthcheck"]["test"]


def test_compose_services_the_nodes_use(compose, node_configs):
    services = compose["services"]
    records = node_configs["records"]["settings"]

    # PostgreSQL for the records, Mosquitto for the notices, the dashboard published.
    pg = services["postgres"]["environment"]
    assert records["database"] == (
        f"postgres://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert services["loupe-records"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert records["notify"]["mqtt"]["url"] == "mqtt://mosquitto:1883"
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:")
    conf = (DOCKER / "mosquitto" / "mosquitto.conf").read_text().split("\n")
    assert "listener 1883" in conf and "allow_anonymous true" in conf
    assert records["dashboard"]["listen"] == "0.0.0.0:8090"
    assert "127.0.0.1:8090:8090" in services["loupe-records"]["ports"], "loopback only"
    assert records["dashboard"]["upload_url"] == "https://loupe-camera:8091/upload"
    assert records["dashboard"]["upload_tls"] == {"ca": "/tls/ca.crt"}
    assert records["dashboard"]["upload_token_file"] == "/tls/dashboard.token"
    upload = node_configs["camera"]["settings"]["upload"]
    assert upload["listen"] == "0.0.0.0:8091"
    assert upload["tls"]["cert"] == "/tls/loupe-camera.crt" and "insecure" not in upload
    assert upload["auth"]["tokens"][0]["file"] == "/tls/dashboard.token"

    # Traces: every Loupe service -> collector (OTLP/gRPC) -> Jaeger, whose UI is published.
    otel = read_yaml(DOCKER / "otel-collector.yaml")
    assert otel["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    (pipeline,) = otel["service"]["pipelines"].values()
    (exporter,) = pipeline["exporters"]
    assert otel["exporters"][exporter]["endpoint"] == "jaeger:4317"
    assert mounts(services["otel-collector"])["/etc/otelcol/config.yaml"] == "./otel-collector.yaml"
    assert "127.0.0.1:16686:16686" in services["jaeger"]["ports"]
    for name, svc in services.items():
        if name.startswith("loupe-") and "command" in svc:
            assert svc["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTLP, name

    # NiFi 2.x with the Python extensions directory and the Loupe binary mounted.
    nifi = services["nifi"]
    assert re.fullmatch(r"apache/nifi:2\.\d+\.\d+", nifi["image"])
    assert "8443:8443" in nifi["ports"]
    m = mounts(nifi)
    assert m["/opt/loupe/nifi/python/extensions"] == "./nifi/python/extensions"
    start = (DOCKER / "nifi" / "start.sh").read_text()
    assert "nifi.python.extensions.source.directory.loupe /opt/loupe/nifi/python/extensions" in start
    assert nifi["entrypoint"][-1] == "/opt/loupe/nifi/start.sh" and m["/opt/loupe/nifi/start.sh"]
    assert m["/opt/loupe/bin"] == "loupe-bin"

    # The runner runs the endpoint flow.
    runner = services["loupe-runner"]
    assert runner["command"][:2] == ["run", "/etc/loupe/flows/loose-wire-recheck.yaml"]
    cmd = runner["command"]
    assert cmd[cmd.index("--ca") + 1] == "/tls/ca.crt"
    assert cmd[cmd.index("--token-file") + 1] == "/tls/runner.token"
    assert services["loupe-certs"]["entrypoint"] == ["/bin/sh", "/opt/loupe/certs.sh"]
    certs = (DOCKER / "certs.sh").read_text()
    assert "loupe certs ca --out /tls" in certs and "loupe certs token" in certs
    assert mounts(runner)["/etc/loupe/flows"] == "./flows"


def test_compose_references_only_existing_files(compose):
    named = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        for container, host in mounts(svc).items():
            if host.startswith("${"):
                continue  # a host folder Docker creates (LOUPE_INBOX)
            if host.startswith("."):
                assert (DOCKER / host).exists(), f"{name}: {host} does not exist"
            else:
                assert host in named, f"{name}: volume {host} is not declared"
        for dep in svc.get("depends_on") or []:
            assert dep in compose["services"], f"{name} depends on unknown {dep}"
    dockerignore = (DOCKER / "Dockerfile.dockerignore").read_text().split("\n")
    assert "target" in dockerignore and "models/train" in dockerignore


def test_dockerfile_builds_one_image_with_loupe_and_onnx_runtime():
    text = (DOCKER / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage build expected"
    assert "cargo build --release --locked --bin loupe" in text
    assert "onnxruntime==1.31.1" in text
    assert "ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so.1.31.1" in text
    assert 'ENTRYPOINT ["loupe"]' in text
    assert "COPY models /opt/loupe/models" in text
    readme = (DOCKER / "README.md").read_text()
    assert "docker build -f docker/Dockerfile -t loupe ." in readme
    assert "docker compose -f docker/compose.yaml up" in readme


def test_node_configs_carry_the_flows_settings(flow, node_configs):
    want = {n["id"]: n.get("settings") or {} for n in flow["nodes"]}
    got = {k: v["settings"] for k, v in node_configs.items()}

    assert got["route"] == want["route"]
    assert got["preprocess"] == want["preprocess"]
    assert Path(got["classify"]["model"]).name == Path(want["classify"]["model"]).name
    same = lambda d, skip: {k: v for k, v in d.items() if k not in skip}  # noqa: E731
    # Paths and listen addresses are the container's; everything else is the flow's.
    assert same(got["camera"], {"directory", "move_to", "upload"}) == same(
        want["camera"], {"directory", "move_to", "upload"}
    )
    assert same(got["records"], {"database", "media_dir", "dashboard", "notify"}) == same(
        want["records"], {"database", "media_dir", "dashboard"}
    )
    assert got["records"]["dashboard"]["title"] == want["records"]["dashboard"]["title"]


def test_runner_flow_is_the_flow_with_endpoints(flow):
    runner = read_yaml(RUNNER_FLOW)
    assert runner["connections"] == flow["connections"]
    for mine, theirs in zip(runner["nodes"], flow["nodes"], strict=True):
        assert mine["endpoint"] == f"https://loupe-{theirs['id']}:50051"
        assert {k: v for k, v in mine.items() if k != "endpoint"} == {
            k: v for k, v in theirs.items() if k != "settings"
        }


def test_node_configs_pass_the_flow_compiler(loupe_bin_path, tmp_path, node_configs):
    """`loupe validate` checks every node type's settings, the same checks `loupe serve` runs."""
    runner = read_yaml(RUNNER_FLOW)
    local = dict(runner)
    local["nodes"] = [
        {**{k: v for k, v in n.items() if k != "endpoint"},
         "settings": node_configs[n["id"]]["settings"]}
        for n in runner["nodes"]
    ]
    path = tmp_path / "compose-nodes.yaml"
    path.write_text(json.dumps(local, indent=2))  # JSON is YAML
    for flow_file in (path, RUNNER_FLOW):
        done = subprocess.run(
            [str(loupe_bin_path), "validate", str(flow_file)],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, f"{flow_file}:\n{done.stdout}\n{done.stderr}"
