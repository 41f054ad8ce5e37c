"""Tests of fine-tuning from a `loupe dataset export` folder (tiny model and data, seconds).

    cd models/train && .venv/bin/python -m unittest tests.test_finetune -v
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHIPPED = ROOT.parent / "coil-classifier"
sys.path.insert(0, str(ROOT))

from loupe_train import common, fake, finetune  # noqa: E402

# Top-level keys the Rust card loader accepts (nodes/classify/src/card.rs, deny_unknown_fields).
RUST_CARD_KEYS = {"name", "version", "description", "note", "input", "output", "labels",
                  "threshold", "decision", "data", "metrics", "training"}


def run_main(*args) -> tuple[int, str]:
    """`python -m loupe_train.finetune ARGS` in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = finetune.main([str(a) for a in args])
    return status, err.getvalue()


def load_card(folder: Path) -> dict:
    import yaml

    return yaml.safe_load((Path(folder) / "model.yaml").read_text())


def io_spec(path: Path) -> list:
    sess = common.ort_session(path)
    return [(t.name, list(t.shape)) for t in sess.get_inputs() + sess.get_outputs()]


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.src = cls.dir / "src"
        fake.make_coil_model(cls.src, size=32, threshold=0.3)
        # 40 px photos for a 32 px model: the card's bilinear resize runs too.
        cls.records = fake.make_feedback(cls.dir / "feedback", products=10, seed=1, size=40)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def export_with(self, records: list[dict], files: bool = True) -> Path:
        """A copy of the fake export with `records` as its manifest."""
        d = Path(tempfile.mkdtemp(dir=self.dir))
        if files:
            shutil.copytree(self.dir / "feedback", d, dirs_exist_ok=True)
        with (d / "manifest.jsonl").open("w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        return d


class FakeExport(Base):
    def test_format(self):
        info = json.loads((self.dir / "feedback" / "dataset.json").read_text())
        self.assertEqual(info["kind"], "feedback")
        self.assertEqual(info["images"], len(self.records))
        self.assertEqual(sum(info["classes"].values()), len(self.records))
        splits: dict = {}
        for r in self.records:
            self.assertEqual(r["file"].split("/")[0], r["label"])  # ImageFolder layout
            self.assertTrue((self.dir / "feedback" / r["file"]).is_file())
            splits.setdefault(r["product_id"], set()).add(r["split"])
        self.assertTrue(all(len(s) == 1 for s in splits.values()), "one split per product")
        self.assertEqual({r["split"] for r in self.records}, {"train", "val"})
        self.assertTrue(any(r["file"].endswith(".jpg") for r in self.records))
        self.assertTrue(any(r.get("camera_verdict") is None for r in self.records))


class Refusals(Base):
    """Each refusal: exit status 2 and a message naming the problem, no traceback."""

    def refused(self, data: Path, *extra, model: Path | None = None) -> str:
        status, err = run_main("--data", data, "--model", model or self.src,
                               "--out", self.dir / "never", *extra)
        self.assertEqual(status, 2, err)
        self.assertTrue(err.startswith("error: "), err)
        self.assertFalse((self.dir / "never" / "model.onnx").exists())
        return err

    def test_no_manifest_exits_2(self):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([sys.executable, "-m", "loupe_train.finetune", "--data", d,
                                "--model", str(self.src), "--out", str(Path(d) / "out")],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("has no manifest.jsonl", r.stderr)
            self.assertIn("loupe dataset export", r.stderr)
            self.assertNotIn("Traceback", r.stderr)
        self.assertIn("does not exist", self.refused(self.dir / "nonexistent"))

    def test_empty_manifest(self):
        self.assertIn("lists no images", self.refused(self.export_with([], files=False)))

    def test_unknown_label(self):
        records = [dict(r) for r in self.records]
        records[3]["label"] = "scratch"
        err = self.refused(self.export_with(records))
        self.assertIn("label 'scratch'", err)
        self.assertIn(repr(records[3]["file"]), err)

    def test_missing_image(self):
        records = [dict(r) for r in self.records]
        records[5]["file"] = "ok/not-there.png"
        self.assertIn("'ok/not-there.png' does not exist", self.refused(self.export_with(records)))
        d = self.export_with(self.records)
        (d / self.records[2]["file"]).write_bytes(b"\x89PNG\r\n\x1a\n broken")
        self.assertIn(f"{self.records[2]['file']!r} cannot be read", self.refused(d))

    def test_no_train_images(self):
        records = [dict(r, split="val") for r in self.records]
        self.assertIn("no train images", self.refused(self.export_with(records)))

    def test_bad_split(self):
        records = [dict(r) for r in self.records]
        records[0]["split"] = "test"
        self.assertIn("split 'test'", self.refused(self.export_with(records)))

    def test_not_an_export(self):
        d = self.export_with(self.records)
        (d / "dataset.json").write_text(json.dumps({"kind": "coils", "seed": 1}))
        self.assertIn("kind 'coils' is not a `loupe dataset export` folder", self.refused(d))

    def test_source_model_must_match_its_card(self):
        model = Path(tempfile.mkdtemp(dir=self.dir))
        shutil.copytree(self.src, model, dirs_exist_ok=True)
        card = (model / "model.yaml").read_text().replace('"(16, 2)"', '"(32, 2)"')
        (model / "model.yaml").write_text(card)
        self.assertIn("do not match the graph", self.refused(self.dir / "feedback", model=model))

    def test_torch_model_must_reproduce_the_onnx_model(self):
        import torch

        source = finetune.load_source(self.src)
        model = finetune.torch_model(source)
        self.assertLess(finetune.check_reproduces(model, source, np.zeros((0, 3, 32, 32))), 1e-5)
        with torch.no_grad():
            model.cells.bias[2] += 1.0
        with self.assertRaisesRegex(finetune.ModelError, "does not reproduce"):
            finetune.check_reproduces(model, source, np.zeros((0, 3, 32, 32)))

    def test_out_is_not_the_source_folder(self):
        status, err = run_main("--data", self.dir / "feedback", "--model", self.src,
                               "--out", self.src)
        self.assertEqual(status, 2)
        self.assertIn("source model's folder", err)


class FineTune(Base):
    def finetuned(self, name: str, *extra) -> tuple[Path, dict]:
        out = self.dir / name
        status, err = run_main("--data", self.dir / "feedback", "--model", self.src, "--out", out,
                               "--epochs", 1, "--batch", 8, *extra)
        self.assertEqual(status, 0, err)
        return out, load_card(out)

    def test_one_epoch(self):
        import onnx

        out, card = self.finetuned("ft", "--report", self.dir / "ft.json")
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["model.onnx", "model.yaml"])
        proto = onnx.load(str(out / "model.onnx"))
        self.assertEqual(proto.ir_version, common.IR_VERSION)
        self.assertEqual(proto.opset_import[0].version, common.OPSET)
        self.assertEqual(io_spec(out / "model.onnx"), io_spec(self.src / "model.onnx"))
        x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
        p = common.ort_session(out / "model.onnx").run(None, {"image": x})[0]
        self.assertEqual(p.shape, (3, 3))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)

        source = load_card(self.src)
        self.assertLessEqual(set(card), RUST_CARD_KEYS)
        for key in ("name", "input", "output", "labels", "threshold", "data"):
            self.assertEqual(card[key], source[key], key)
        self.assertEqual(card["decision"], source["decision"])
        self.assertEqual(card["decision"]["threshold"], 0.3)
        self.assertTrue(card["version"].startswith(source["version"] + "+ft."))
        ft = card["training"]["finetune"]
        self.assertEqual(ft["source"]["onnx_sha256"], common.sha256(self.src / "model.onnx"))
        self.assertEqual(ft["onnx_sha256"], common.sha256(out / "model.onnx"))
        self.assertEqual(ft["data"]["since"], "2026-11-01")
        train = [r["label"] for r in self.records if r["split"] == "train"]
        self.assertEqual(ft["data"]["train"]["counts"],
                         {label: train.count(label) for label in ("ok", "burr", "loose_wire")})
        self.assertEqual((ft["epochs"], ft["lr"]), (1, 1e-4))
        self.assertEqual(ft["threshold"], {"value": 0.3, "from": "source card"})
        for when in ("before", "after"):
            self.assertEqual(ft["validation"][when]["images"], 4)
            self.assertIn("loose_wire_recall", ft["validation"][when])
            self.assertIn("accuracy", ft["validation"][when])
        self.assertLess(ft["onnx_vs_torch_max_abs_diff"], 1e-4)
        self.assertIn("not re-measured", card["metrics"]["note"])
        report = json.loads((self.dir / "ft.json").read_text())
        self.assertEqual(report["version"], card["version"])

    def test_card_not_laid_out_like_the_pipelines(self):
        import yaml

        model = Path(tempfile.mkdtemp(dir=self.dir))
        shutil.copytree(self.src, model, dirs_exist_ok=True)
        source = load_card(self.src)
        (model / "model.yaml").write_text(yaml.safe_dump(source, sort_keys=True))
        out = self.dir / "ft-plain"
        status, err = run_main("--data", self.dir / "feedback", "--model", model, "--out", out,
                               "--epochs", 1)
        self.assertEqual(status, 0, err)
        card = load_card(out)
        for key in ("name", "input", "output", "labels", "threshold", "decision"):
            self.assertEqual(card[key], source[key], key)
        self.assertIn("finetune", card["training"])

    def test_threshold_override(self):
        _, card = self.finetuned("ft-threshold", "--threshold", 0.2, "--version", "1.0.1")
        self.assertEqual(card["version"], "1.0.1")
        self.assertEqual(card["decision"]["threshold"], 0.2)
        self.assertEqual(card["decision"]["source_threshold"], 0.3)
        self.assertIn("--threshold", card["decision"]["chosen_on"])
        self.assertEqual(card["training"]["finetune"]["threshold"]["value"], 0.2)
        self.assertEqual(card["training"]["finetune"]["validation"]["before"]["threshold"], 0.3)


@unittest.skipUnless((SHIPPED / "model.onnx").is_file(), "no shipped coil classifier")
class ShippedModel(unittest.TestCase):
    """The shipped coil classifier's weights map back onto classifier.py's module."""

    def test_fine_tune_the_shipped_model(self):
        with tempfile.TemporaryDirectory() as d:
            fake.make_feedback(Path(d) / "feedback", products=5, seed=2, size=256)
            status, err = run_main("--data", Path(d) / "feedback", "--model", SHIPPED,
                                   "--out", Path(d) / "out", "--epochs", 1)
            self.assertEqual(status, 0, err)
            self.assertEqual(io_spec(Path(d) / "out" / "model.onnx"),
                             io_spec(SHIPPED / "model.onnx"))
            card, source = load_card(Path(d) / "out"), load_card(SHIPPED)
            self.assertEqual(card["input"], source["input"])
            self.assertEqual(card["decision"]["threshold"], source["decision"]["threshold"])
            self.assertLess(card["training"]["finetune"]["torch_reproduces_source_max_abs_diff"],
                            1e-4)


if __name__ == "__main__":
    unittest.main()
