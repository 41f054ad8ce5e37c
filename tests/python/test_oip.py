"""The Open Inference Protocol (KServe v2) on served model nodes, with Triton's own client.

`loupe serve classify` (and `segment`) also answer `inference.GRPCInferenceService` on their
port. These tests call it with `tritonclient.grpc` from the package index, as any Triton or
KServe user would: liveness and readiness, server and model metadata, and `infer` with a
tensor built here in numpy exactly as `models/tiny-classifier/model.yaml` says (RGB, NCHW,
value = (pixel * scale - mean) / std; the images are made at the input size, so no resize is
involved). The probabilities must be the ones the node's own `Process` call writes into
`classify.scores`.

tritonclient registers its own `inference` protos in protobuf's default pool: this module
never imports the `inference` modules that the `pb` fixture compiles from `proto/`.
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
import zlib

import numpy as np
import pytest

from conftest import REPO, require_module, require_ort

grpcclient = require_module("tritonclient.grpc", "tritonclient")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODEL_DIR = REPO / "models" / "tiny-classifier"
SEGMENTER_DIR = REPO / "models" / "surface-segmenter"


def png_from_array(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an (H, W, 3) uint8 array, written by hand (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Card:
    """The fields of the model card that say how an image becomes the input tensor.

    The card is YAML; its few flat fields are read with regular expressions (no YAML
    library in the requirements), and anything this numpy code does not implement fails here.
    """

    def __init__(self, text: str):
        def field(name: str) -> str:
            m = re.search(rf"^\s*{name}:\s*(.+?)\s*$", text, re.MULTILINE)
            assert m, f"model card has no {name}"
            return m.group(1).strip('"')

        def section_name(section: str) -> str:
            # `name:` as the first field of a section, after any comment lines.
            m = re.search(rf"^{section}:\s*\n(?:\s*#.*\n)*\s*name:\s*(\S+)", text, re.M)
            assert m, f"model card has no {section}.name"
            return m.group(1)

        def numbers(name: str) -> list[float]:
            return [float(v) for v in field(name).strip("[]").split(",")]

        self.name = field("name")
        self.version = field("version")
        self.input_name = section_name("input")
        self.output_name = section_name("output")
        self.shape = [int(v) for v in numbers("shape")]
        self.layout = field("layout")
        self.color_order = field("color_order")
        num, _, den = field("scale").partition("/")
        self.scale = float(num) / float(den or 1)
        self.mean = np.array(numbers("mean"), dtype=np.float64)
        self.std = np.array(numbers("std"), dtype=np.float64)
        self.labels = [v.strip() for v in field("labels").strip("[]").split(",")]
        assert (self.layout, self.color_order) == ("NCHW", "RGB"), (
            "this test builds NCHW RGB tensors"
        )

    @property
    def size(self) -> tuple[int, int]:
        return self.shape[2], self.shape[3]

    def tensor(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 images at the input size -> the (N, 3, H, W) FP32 input."""
        assert pixels.shape[1:3] == self.size, "made at the input size: no resize involved"
        values = (pixels.astype(np.float64) * self.scale - self.mean) / self.std
        return values.transpose(0, 3, 1, 2).astype(np.float32)


@pytest.fixture(scope="module")
def card() -> Card:
    return Card((MODEL_DIR / "model.yaml").read_text())


def sample_images(card: Card) -> list[np.ndarray]:
    h, w = card.size
    rng = np.random.default_rng(7)
    solid = [
        np.full((h, w, 3), rgb, dtype=np.uint8)
        for rgb in [(230, 20, 20), (20, 200, 30), (0, 0, 255)]
    ]
    patched = np.full((h, w, 3), (200, 40, 40), dtype=np.uint8)
    patched[: h // 2, : w // 3] = (10, 30, 240)
    noise = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return [*solid, patched, noise]


@pytest.fixture
def classify_node(loupe_node):
    return loupe_node(
        "classify",
        settings={"model": str(MODEL_DIR), "serving": {"reload_interval": "0s"}},
        env={"ORT_DYLIB_PATH": require_ort("the `classify` node")},
    )


@pytest.fixture
def triton(classify_node):
    client = grpcclient.InferenceServerClient(url=classify_node.address)
    yield client
    client.close()


def process_scores(node, pb, content: bytes) -> dict[str, float]:
    """`classify.scores` of the node's own Process call."""
    flow_file = pb.pb2.FlowFile(
        uuid=str(uuid.uuid4()), content=content, attributes={"filename": "x.png"}
    )
    response = node.processor(pb).Process(pb.pb2.ProcessRequest(flow_file=flow_file), timeout=30)
    (output,) = response.outputs
    assert output.relationship == "success", output
    return json.loads(output.flow_file.attributes["classify.scores"])


def round4(p: float) -> float:
    """As the node rounds `classify.scores` (half away from zero, in double precision)."""
    return math.floor(float(p) * 1e4 + 0.5) / 1e4


def test_liveness_readiness_and_metadata(triton, card):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(card.name)
    assert triton.is_model_ready(card.name, card.version)
    assert not triton.is_model_ready("no-such-model")
    assert not triton.is_model_ready(card.name, "999")

    server = triton.get_server_metadata()
    assert server.name == "loupe"
    assert server.version

    meta = triton.get_model_metadata(card.name)
    assert meta.name == card.name
    assert list(meta.versions) == [card.version]
    assert meta.platform == "onnx_onnxv1"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        (card.input_name, "FP32", card.shape)
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        (card.output_name, "FP32", [-1, len(card.labels)])
    ]
    as_json = triton.get_model_metadata(card.name, as_json=True)
    assert as_json["platform"] == "onnx_onnxv1"

    with pytest.raises(InferenceServerException) as err:
        triton.get_model_metadata("no-such-model")
    assert "NOT_FOUND" in str(err.value.status()), err.value
    assert "unknown model" in err.value.message()


def test_infer_equals_the_nodes_own_process_scores(triton, classify_node, pb, card):
    images = sample_images(card)
    for pixels in images:
        tensor = card.tensor(pixels[None])
        inp = grpcclient.InferInput(card.input_name, list(tensor.shape), "FP32")
        inp.set_data_from_numpy(tensor)
        result = triton.infer(
            card.name,
            [inp],
            outputs=[grpcclient.InferRequestedOutput(card.output_name)],
            request_id="oip-1",
        )
        probabilities = result.as_numpy(card.output_name)
        assert probabilities is not None and probabilities.dtype == np.float32
        assert probabilities.shape == (1, len(card.labels)), probabilities.shape
        response = result.get_response()
        assert (response.model_name, response.model_version, response.id) == (
            card.name,
            card.version,
            "oip-1",
        )

        scores = process_scores(classify_node, pb, png_from_array(pixels))
        assert set(scores) == set(card.labels)
        for label, p in zip(card.labels, probabilities[0]):
            # `classify.scores` has 4 decimals: the OIP probability rounded the same way.
            assert abs(round4(p) - scores[label]) <= 1e-5, (label, float(p), scores)

    # A batch in one request: each row as when sent alone.
    batch = card.tensor(np.stack(images))
    inp = grpcclient.InferInput(card.input_name, list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch)
    rows = triton.infer(card.name, [inp]).as_numpy(card.output_name)
    assert rows.shape == (len(images), len(card.labels))
    for i, pixels in enumerate(images):
        inp = grpcclient.InferInput(card.input_name, [1, *batch.shape[1:]], "FP32")
        inp.set_data_from_numpy(card.tensor(pixels[None]))
        alone = triton.infer(card.name, [inp]).as_numpy(card.output_name)
        np.testing.assert_allclose(rows[i], alone[0], atol=1e-6)


def test_bad_requests_are_invalid_argument_with_a_reason(triton, card):
    h, w = card.size
    wrong = np.zeros((1, 3, h // 2, w), dtype=np.float32)
    inp = grpcclient.InferInput(card.input_name, list(wrong.shape), "FP32")
    inp.set_data_from_numpy(wrong)
    with pytest.raises(InferenceServerException) as err:
        triton.infer(card.name, [inp])
    assert "INVALID_ARGUMENT" in str(err.value.status()), err.value
    assert "shape" in err.value.message()

    doubles = np.zeros((1, 3, h, w), dtype=np.float64)
    inp = grpcclient.InferInput(card.input_name, list(doubles.shape), "FP64")
    inp.set_data_from_numpy(doubles)
    with pytest.raises(InferenceServerException) as err:
        triton.infer(card.name, [inp])
    assert "FP64 in the request but FP32 in the model" in err.value.message()

    inp = grpcclient.InferInput(card.input_name, [1, 3, h, w], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 3, h, w), dtype=np.float32))
    with pytest.raises(InferenceServerException) as err:
        triton.infer("no-such-model", [inp])
    assert "NOT_FOUND" in str(err.value.status()), err.value


def test_segment_serves_the_protocol_too(loupe_node):
    node = loupe_node(
        "segment",
        settings={"model": str(SEGMENTER_DIR), "serving": {"reload_interval": "0s"}},
        env={"ORT_DYLIB_PATH": require_ort("the `segment` node")},
    )
    client = grpcclient.InferenceServerClient(url=node.address)
    try:
        assert client.is_model_ready("surface-segmenter")
        meta = client.get_model_metadata("surface-segmenter")
        assert meta.platform == "onnx_onnxv1"
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
            ("image", "FP32", [-1, 1, 256, 256])
        ]
        inp = grpcclient.InferInput("image", [1, 1, 256, 256], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 1, 256, 256), dtype=np.float32))
        probabilities = client.infer("surface-segmenter", [inp]).as_numpy("probabilities")
        assert probabilities.shape == (1, 5, 256, 256)
        # Softmax over the class axis is in the graph.
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    finally:
        client.close()
