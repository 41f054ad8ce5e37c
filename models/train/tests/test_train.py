"""Tests of the training code on tiny fake datasets (seconds, no `loupe` binary needed).

    cd models/train && .venv/bin/python -m unittest discover -s tests -v
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from loupe_train import common, data, fake, metrics  # noqa: E402

# 12x10 RGB test pattern -> (x*37 + y*91 + c*53 + x*y*7) % 256.
# Expected outputs were produced by `image` 0.25.10 (`to_rgb8`/`to_luma8`, then
# `imageops::resize(.., FilterType::Triangle)`), the code path of the Rust classify node.
RUST_RGB_5x4 = [106, 132, 142, 124, 130, 144, 126, 130, 134, 116, 130, 136, 118, 128, 126, 121,
                137, 127, 140, 139, 128, 142, 133, 125, 127, 127, 125, 139, 130, 133, 117, 138,
                132, 120, 129, 121, 146, 129, 125, 125, 130, 114, 141, 111, 125, 135, 108, 124,
                148, 124, 140, 114, 131, 132, 128, 139, 129, 122, 113, 146]
RUST_GRAY_7x6 = [104, 140, 135, 131, 118, 116, 135, 138, 125, 136, 133, 125, 136, 130, 139, 138,
                 137, 136, 133, 132, 125, 142, 142, 122, 138, 144, 121, 125, 110, 126, 110, 127,
                 113, 126, 101, 110, 133, 151, 132, 131, 148, 120]


def pattern() -> np.ndarray:
    y, x, c = np.mgrid[0:10, 0:12, 0:3]
    return ((x * 37 + y * 91 + c * 53 + x * y * 7) % 256).astype(np.uint8)


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


class Preprocessing(unittest.TestCase):
    def test_bilinear_matches_the_rust_image_crate(self):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "p.png"
            Image.fromarray(pattern()).save(path)
            rgb = data.load_pixels(path, (4, 5), "RGB").transpose(1, 2, 0)
            self.assertEqual(rgb.ravel().tolist(), RUST_RGB_5x4)
            gray = data.load_pixels(path, (6, 7), "GRAY")[0]
            self.assertEqual(gray.ravel().tolist(), RUST_GRAY_7x6)

    def test_same_size_is_passed_through_and_bgr_reverses(self):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "p.png"
            Image.fromarray(pattern()).save(path)
            rgb = data.load_pixels(path, (10, 12), "RGB")
            self.assertTrue(np.array_equal(rgb.transpose(1, 2, 0), pattern()))
            bgr = data.load_pixels(path, (10, 12), "BGR")
            self.assertTrue(np.array_equal(bgr, rgb[::-1]))

    def test_normalise(self):
        x = np.array([0, 255], dtype=np.uint8).reshape(1, 1, 1, 2)
        out = data.normalise(x, 1 / 255, [0.5], [0.25])
        np.testing.assert_allclose(out.ravel(), [-2.0, 2.0], atol=1e-6)


class Metrics(unittest.TestCase):
    def test_recall_threshold(self):
        scores = np.linspace(0.01, 1.0, 200)  # 200 positives: 99.5% allows one miss
        self.assertAlmostEqual(metrics.recall_threshold(scores, 0.995), scores[1])
        self.assertAlmostEqual(metrics.recall_threshold(scores[:100], 0.995), scores[0])
        t = metrics.recall_threshold(scores, 0.995)
        self.assertGreaterEqual((scores >= t).mean(), 0.995)

    def test_auroc(self):
        self.assertEqual(metrics.auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]), 1.0)
        self.assertEqual(metrics.auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]), 0.0)
        self.assertEqual(metrics.auroc([0.5, 0.5], [0, 1]), 0.5)

    def test_dice(self):
        true = np.array([[0, 1, 1, 2]])
        pred = np.array([[0, 1, 0, 2]])
        d = metrics.dice_from_counts(metrics.dice_counts(pred, true, 3))
        np.testing.assert_allclose(d, [2 / 3, 2 / 3, 1.0])

    def test_confusion_and_per_class(self):
        m = metrics.confusion(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
        self.assertEqual(m.tolist(), [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
        pc = metrics.per_class(m, ["a", "b", "c"])
        self.assertEqual(pc["a"]["recall"], 0.5)
        self.assertEqual(pc["b"]["precision"], 0.5)


class DataChecks(unittest.TestCase):
    """Training refuses unusable folders with a clear message and a non-zero exit."""

    def test_missing_manifest(self):
        with tempfile.TemporaryDirectory() as d:
            for module in ("loupe_train.classifier", "loupe_train.segmenter"):
                r = run_module(module, "--train", d, "--val", d, "--test", d, "--out", d)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("has no manifest.jsonl", r.stderr)
                self.assertNotIn("Traceback", r.stderr)

    def test_missing_folder(self):
        r = run_module("loupe_train.classifier", "--train", "/nonexistent/x", "--val", "/x",
                       "--test", "/x", "--out", "/tmp/x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("does not exist", r.stderr)

    def test_empty_coil_class(self):
        with tempfile.TemporaryDirectory() as d:
            fake.make_coils(Path(d), products=6, seed=1, size=32, omit="loose_wire")
            r = run_module("loupe_train.classifier", "--train", d, "--val", d, "--test", d,
                           "--out", d)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("class loose_wire has no images", r.stderr)

    def test_empty_surface_class(self):
        with tempfile.TemporaryDirectory() as d:
            fake.make_surfaces(Path(d), images=10, seed=1, size=32, omit=2)
            r = run_module("loupe_train.segmenter", "--train", d, "--val", d, "--test", d,
                           "--out", d)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("class pit covers no pixels", r.stderr)

    def test_empty_manifest_and_unknown_label(self):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "manifest.jsonl").write_text("\n")
            with self.assertRaisesRegex(data.DataError, "lists no images"):
                data.read_manifest(Path(d))
            (Path(d) / "manifest.jsonl").write_text(json.dumps({"file": "a.png", "label": "x"}))
            with self.assertRaisesRegex(data.DataError, "label 'x'"):
                data.load_coils(Path(d), (8, 8))


class EndToEnd(unittest.TestCase):
    """Train one epoch on fake data; the exported models must be servable as the cards say."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        for i, name in enumerate(("train", "val", "test")):
            fake.make_coils(cls.dir / f"coils-{name}", products=10, seed=i + 1, size=64)
            fake.make_surfaces(cls.dir / f"surf-{name}", images=15, seed=i + 1, size=64)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_onnx(self, path: Path, channels: int, size: int, out_shape_tail):
        import onnx
        import onnxruntime  # noqa: F401

        proto = onnx.load(str(path))
        self.assertEqual(proto.ir_version, common.IR_VERSION)
        self.assertEqual(proto.opset_import[0].version, common.OPSET)
        sess = common.ort_session(path)
        self.assertEqual(sess.get_inputs()[0].name, "image")
        self.assertEqual(sess.get_outputs()[0].name, "probabilities")
        x = np.random.default_rng(0).normal(size=(3, channels, size, size)).astype(np.float32)
        p = sess.run(None, {"image": x})[0]  # dynamic batch: 3
        self.assertEqual(p.shape, (3, *out_shape_tail))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)

    def test_classifier(self):
        from loupe_train import classifier

        cfg = classifier.Config(size=32, layers=((8, 2), (16, 2)), crop=16, crop_steps=3,
                                crop_batch=8, full_epochs=1, full_batch=16)
        out = self.dir / "coil-model"
        report = classifier.run(cfg, self.dir / "coils-train", self.dir / "coils-val",
                                self.dir / "coils-test", out, self.dir / "c.json")
        self.check_onnx(out / "model.onnx", 3, 32, (3,))
        self.assertLess(report["onnx_vs_torch_max_abs_diff"], 1e-4)
        # The calibration is in the graph: the ONNX output is the calibrated softmax.
        self.assertLess(report["onnx_vs_calibrated_max_abs_diff"], 1e-4)
        card = self.card(out)
        self.assertEqual(card["input"]["shape"], [-1, 3, 32, 32])
        self.assertEqual(card["labels"], ["ok", "burr", "loose_wire"])
        decision = card["decision"]
        self.assertEqual(decision["threshold"], report["threshold"]["threshold"])
        self.assertEqual(decision["policy"]["confirm"], decision["threshold"])
        self.assertGreaterEqual(decision["policy"]["override"], decision["policy"]["confirm"])
        for key in ("method", "temperature", "bias", "prevalence", "ece_top_label_before",
                    "ece_top_label_after"):
            self.assertIn(key, decision["calibration"])
        self.assertEqual(card["data"]["test"]["seed"], 3)
        # Top-level keys the Rust card loader accepts, nothing else.
        self.assertLessEqual(set(card), {"name", "version", "description", "note", "input",
                                         "output", "labels", "threshold", "decision", "data",
                                         "metrics", "training"})
        coils = card["metrics"]["test"]["coils"]
        self.assertEqual(list(coils), list(cfg.eval_faults))
        for f in coils.values():
            self.assertEqual(f["defective_stopped"] + f["defective_missed"], f["defective"])
        # Every camera-flagged defective validation coil is stopped under every condition.
        for f in report["validation"]["coils"].values():
            self.assertEqual(f["defective_stopped"], f["defective"])

    def test_classifier_from_an_exported_model(self):
        from loupe_train import classifier

        fake.make_coil_model(self.dir / "tiny", size=32)
        cfg = classifier.Config(size=32, layers=((8, 2), (16, 2)), crop=16, crop_steps=2,
                                crop_batch=8, full_epochs=1, full_batch=8, full_steps=2,
                                init_from=str(self.dir / "tiny"), mine_share=0.2,
                                eval_faults=("clean", "tilt:7"), override_good_share=0.0)
        report = classifier.run(cfg, self.dir / "coils-train", self.dir / "coils-val",
                                [self.dir / "coils-test", self.dir / "coils-val"],
                                self.dir / "coil-init")
        self.assertEqual(report["init"]["from"], str(self.dir / "tiny"))
        self.assertEqual(list(report["more_tests"]), ["2"])
        self.assertEqual(report["policy"]["override"], 1.0)

    def test_mining_keeps_the_most_wrong_images(self):
        from loupe_train import classifier, data

        import torch

        ds = data.load_coils(self.dir / "coils-train", (64, 64))
        cfg = classifier.Config(size=64, layers=((8, 2), (8, 2), (16, 2), (16, 2)),
                                mine_share=0.25)
        model = classifier.build_model(cfg)
        hard = classifier.mine_hard(model, ds, cfg)
        with torch.no_grad():
            x = data.normalise(torch.from_numpy(ds.pixels), 1 / 255, cfg.mean, cfg.std)
            _, c = model(x, with_cells=True)
        score = (c[:, 2] - c[:, 0]).flatten(1).max(1).values.numpy()
        loose = ds.labels == classifier.LOOSE
        neg, pos = hard["negatives"], hard["positives"]
        self.assertEqual(len(neg), int((~loose).sum() * 0.25))
        self.assertEqual(len(pos), max(1, int(loose.sum() * 0.25)))
        self.assertFalse(loose[neg].any())
        self.assertTrue(loose[pos].all())
        # No unmined negative scores above a mined one; no unmined loose wire below one.
        rest_neg = np.setdiff1d(np.flatnonzero(~loose), neg)
        rest_pos = np.setdiff1d(np.flatnonzero(loose), pos)
        self.assertLessEqual(score[rest_neg].max(), score[neg].min() + 1e-6)
        self.assertGreaterEqual(score[rest_pos].min(), score[pos].max() - 1e-6)
        # Crop centres are the centres of cells inside the image.
        cells = hard["cells"]
        self.assertTrue(((cells[:, 1:] >= 8) & (cells[:, 1:] < 64)).all())
        self.assertTrue(((cells[:, 1:] - 8) % 16 == 0).all())

    def test_segmenter(self):
        from loupe_train import segmenter

        cfg = segmenter.Config(size=32, epochs=1, base=4, multipliers=(1, 2, 4), batch=8)
        out = self.dir / "seg-model"
        report = segmenter.run(cfg, self.dir / "surf-train", self.dir / "surf-val",
                               self.dir / "surf-test", out, self.dir / "s.json")
        self.check_onnx(out / "model.onnx", 1, 32, (5, 32, 32))
        self.assertLess(report["onnx_vs_torch_max_abs_diff"], 1e-4)
        card = self.card(out, decision_key="image_threshold")
        faults = card["metrics"]["test"]["faults"]
        self.assertEqual(list(faults), list(cfg.eval_faults))
        for f in faults.values():
            for key in ("mean_dice_defects", "dice", "image_auroc", "clean_sheets_flagged"):
                self.assertIn(key, f)
        self.assertEqual(card["output"]["shape"], [-1, 5, 32, 32])
        self.assertEqual(card["labels"][0], "background")
        self.assertEqual(card["image_threshold"], report["image_threshold"]["threshold"])

    def card(self, out: Path, decision_key: str = "threshold") -> dict:
        import yaml

        card = yaml.safe_load((out / "model.yaml").read_text())
        # Fields the Rust classify card loader requires.
        for key in ("name", "version", "input", "output", "labels", decision_key):
            self.assertIn(key, card)
        for key in ("name", "shape", "layout", "dtype", "color_order", "resize", "scale",
                    "mean", "std"):
            self.assertIn(key, card["input"])
        self.assertEqual(card["input"]["scale"], "1/255")
        self.assertIn(card["input"]["resize"], ("nearest", "bilinear", "bicubic", "lanczos3"))
        return card


if __name__ == "__main__":
    unittest.main()
