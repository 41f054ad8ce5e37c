"""Camera faults (their definitions, determinism, masks turned with images), calibration and
the coil policy. Fast (about a second).

    cd models/train && .venv/bin/python -m unittest tests.test_faults -v
"""

from __future__ import annotations

import io
import math
import sys
import unittest
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loupe_train import faults, policy  # noqa: E402


def image(h=24, w=20, c=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w, c) if c else (h, w)
    return rng.integers(0, 256, shape).astype(np.uint8)


class Definitions(unittest.TestCase):
    def test_exposure(self):
        img = np.array([[0, 10, 100, 200, 255]], np.uint8)
        self.assertEqual(faults.apply("exposure:1.3", img, None).tolist(), [[0, 13, 130, 255, 255]])
        # 0.7 * 10 = 7, 0.7 * 255 = 178.5 -> 179 (half up).
        self.assertEqual(faults.apply("exposure:0.7", img, None).tolist(), [[0, 7, 70, 140, 179]])

    def test_noise_is_gaussian_per_pixel_and_channel(self):
        img = np.full((64, 64, 3), 128, np.uint8)
        out = faults.apply("noise:8", img, np.random.default_rng(5))
        n = np.random.default_rng(5).normal(0, 8, img.shape).astype(np.float32)
        expect = np.clip(np.round(np.float32(128) + n), 0, 255)  # no exact .5 here
        self.assertTrue(np.array_equal(out, expect.astype(np.uint8)))
        d = out.astype(float) - 128
        self.assertAlmostEqual(d.std(), 8, delta=0.3)
        self.assertGreater(np.abs(d[..., 0] - d[..., 1]).mean(), 1)  # channels independent

    def test_blur_kernel_and_edges(self):
        k = faults.gaussian_kernel(1.5)
        self.assertEqual(len(k), 2 * math.ceil(4.5) + 1)
        self.assertAlmostEqual(k.sum(), 1.0)
        const = np.full((15, 17), 77, np.uint8)
        self.assertTrue(np.array_equal(faults.apply("blur:1.5", const, None), const))
        # An impulse far from the edges spreads as the outer product of the kernel.
        img = np.zeros((31, 31), np.uint8)
        img[15, 15] = 255
        out = faults.blur(img, 1.0)
        w = faults.gaussian_kernel(1.0)
        expect = np.zeros((31, 31))
        expect[12:19, 12:19] = 255 * np.outer(w, w)
        self.assertTrue(np.array_equal(out, np.floor(expect + 0.5).astype(np.uint8)))
        # Edge replicated: a bright first column stays as bright as a wider stripe would be.
        img = np.zeros((9, 12), np.uint8)
        img[:, 0] = 200
        ref = np.zeros((9, 12 + 10), np.uint8)
        ref[:, :11] = 200
        self.assertTrue(np.array_equal(faults.blur(img, 1.2)[:, :6], faults.blur(ref, 1.2)[:, 10:16]))
        self.assertTrue(np.array_equal(faults.apply("blur:0", img, None), img))

    def test_jpeg_is_pillow(self):
        img = image(32, 32)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=50)
        expect = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        self.assertTrue(np.array_equal(faults.apply("jpeg:50", img, None), expect))
        self.assertEqual(faults.apply("jpeg:50", image(c=0), None).shape, (24, 20))

    def test_tilt(self):
        img = image(17, 17)
        self.assertTrue(np.array_equal(faults.apply("tilt:0", img, None), img))
        # 90 degrees on a square image is an exact quarter turn (clockwise as shown, the
        # direction of the Rust side's tilt).
        self.assertTrue(np.array_equal(faults.tilt(img, 90), np.rot90(img, -1)))
        self.assertTrue(np.array_equal(faults.tilt(img, -90), np.rot90(img, 1)))
        # Pillow's rotate (counter-clockwise for positive angles, same centre) agrees inside.
        big = image(64, 64, seed=3)
        ours = faults.tilt(big, 7).astype(int)
        pil = np.asarray(Image.fromarray(big).rotate(-7, resample=Image.BILINEAR)).astype(int)
        self.assertLessEqual(np.abs(ours - pil)[12:-12, 12:-12].max(), 1)
        # Outside the image: the edge replicated (no black corners).
        flat = np.full((32, 32, 3), 90, np.uint8)
        self.assertTrue(np.array_equal(faults.tilt(flat, 10), flat))

    def test_mask_turns_with_its_image(self):
        img = np.zeros((48, 48), np.uint8)
        img[10:20, 25:40] = 200
        mask = (img > 0).astype(np.uint8) * 3
        for deg in (7, -7, 10):
            turned = faults.tilt(img, deg)
            m = faults.tilt_mask(mask, deg)
            self.assertEqual(set(np.unique(m).tolist()), {0, 3})  # nearest: classes only
            inside = turned[m == 3].astype(float).mean()
            outside = turned[m == 0].astype(float).mean()
            self.assertGreater(inside, 150)
            self.assertLess(outside, 15)
            self.assertAlmostEqual((m == 3).sum(), (mask == 3).sum(), delta=12)

    def test_determinism_and_batches(self):
        batch = np.stack([image(20, 22, seed=s).transpose(2, 0, 1) for s in range(3)])
        for spec in faults.GRID:
            a = faults.apply_chw(spec, batch, seed=4)
            self.assertTrue(np.array_equal(a, faults.apply_chw(spec, batch, seed=4)), spec)
            self.assertTrue(np.array_equal(a, faults.apply_batch(spec, batch, seed=4)), spec)
            self.assertEqual(a.dtype, np.uint8)
        gray = batch[:, :1]
        for spec in ("blur:1.5", "tilt:-7"):
            self.assertTrue(np.array_equal(faults.apply_batch(spec, gray),
                                           faults.apply_chw(spec, gray)), spec)
        self.assertFalse(np.array_equal(faults.apply_chw("noise:8", batch, 1),
                                        faults.apply_chw("noise:8", batch, 2)))
        with self.assertRaises(ValueError):
            faults.parse("smudge:3")

    def test_training_mix(self):
        import torch

        x = torch.from_numpy(np.stack([image(32, 32, seed=s).transpose(2, 0, 1) for s in range(6)]))
        mask = torch.zeros(6, 32, 32, dtype=torch.uint8)
        mask[:, 8:14, 18:26] = 2
        out = [faults.mix_batch(x.float(), torch.Generator().manual_seed(3), faults.Mix(), mask)
               for _ in range(2)]
        self.assertTrue(torch.equal(out[0][0], out[1][0]))  # seeded
        self.assertEqual(out[0][0].shape, x.shape)
        self.assertEqual(set(torch.unique(out[0][1]).tolist()) - {0, 2}, set())
        # A pure tilt in the mix is the same rotation as `tilt` (float, before rounding).
        only_tilt = faults.Mix(clean=0, p=1, blur=(0, 0), exposure=(1, 1), noise=(0, 0),
                               tilt=(7, 7), jpeg_p=0)
        y, m = faults.mix_batch(x[:1].float(), torch.Generator(), only_tilt, mask[:1])
        ref = faults.tilt(x[0].permute(1, 2, 0).numpy(), 7)
        self.assertLessEqual(np.abs(y[0].permute(1, 2, 0).numpy() - ref).max(), 0.51)
        ref_m = faults.tilt_mask(mask[0].numpy(), 7)
        self.assertLessEqual(int((m[0].numpy() != ref_m).sum()), 3)


class Calibration(unittest.TestCase):
    def test_temperature_is_recovered(self):
        rng = np.random.default_rng(0)
        n = 6000
        true_z = np.stack([np.zeros(n), rng.normal(0, 2, n), rng.normal(-1, 2, n)], 1)
        labels = np.array([rng.choice(3, p=policy.softmax(z[None])[0]) for z in true_z])
        fit = policy.fit_temperature(true_z * 2.5, labels, np.ones(n), with_bias=False)
        self.assertAlmostEqual(fit["temperature"], 2.5, delta=0.25)
        self.assertLess(fit["nll_after"], fit["nll_before"])
        p = policy.calibrated(true_z * 2.5, fit["temperature"], fit["bias"])
        self.assertLess(policy.ece(p, labels), policy.ece(policy.softmax(true_z * 2.5), labels))

    def test_prevalence_weights(self):
        labels = np.array([0, 0, 1, 2, 2, 2])
        w, per_class = policy.prevalence_weights(labels, {"ok": 0.9, "burr": 0.05, "loose_wire": 0.05})
        self.assertAlmostEqual(w.mean(), 1.0)
        self.assertGreater(per_class["ok"], per_class["loose_wire"])


class CoilPolicy(unittest.TestCase):
    def coils(self):
        # Coil a: defective, camera flags angle 0 (p 0.3); coil b: good, camera flags angle 0
        # (p 0.01); coil c: good, camera passes everything, one angle p 0.6; coil d: defective,
        # the camera misses it, p 0.99.
        ids = ["a", "a", "b", "b", "c", "c", "d", "d"]
        labels = np.array([2, 0, 0, 0, 0, 1, 2, 0])
        camera = np.array([1, 0, 1, 0, 0, 0, 0, 0], bool)
        p = np.array([0.3, 0.02, 0.01, 0.2, 0.6, 0.1, 0.99, 0.0])
        return policy.Coils(ids, labels, camera), p

    def test_figures(self):
        coils, p = self.coils()
        f = coils.figures(p, confirm=0.1, override=0.9)
        self.assertEqual((f["defective"], f["defective_stopped"], f["good"]), (2, 2, 2))
        self.assertEqual((f["good_stopped"], f["good_camera_stopped"]), (0, 1))
        self.assertEqual(f["camera_false_rejects_cleared_rate"], 1.0)
        f = coils.figures(p, confirm=0.005, override=0.5)
        self.assertEqual(f["good_stopped"], 2)
        self.assertEqual(f["defective_camera_stopped"], 1)

    def test_choose(self):
        coils, p = self.coils()
        c = policy.choose({"clean": (coils, p), "blur": (coils, p * 0.5)}, margin=1.0,
                          override_good_share=0.0, override_margin=0.0)
        self.assertEqual(c["confirm_decided_by"], "blur")
        self.assertAlmostEqual(c["confirm_highest_meeting_target"], 0.15)
        self.assertLess(c["confirm"], 0.15)
        self.assertGreaterEqual(c["override"], 0.6)  # above the good coils' camera-passed max
        self.assertEqual(c["per_condition"]["clean"]["camera_never_flags_defective"], 1)

    def multiview_coils(self):
        # Coil e: defective, its loose wire weak from two camera-flagged angles (0.04, 0.03);
        # coil f: defective, strong from one flagged angle only (0.5); coil g: good, two
        # camera-flagged burr angles (0.004, 0.002); coil h: good, one flagged burr angle 0.02;
        # coil i: good, a camera-passed angle at 0.6 (it sets the override).
        ids = ["e", "e", "e", "f", "f", "g", "g", "g", "h", "h", "i", "i"]
        labels = np.array([2, 2, 0, 2, 0, 1, 1, 0, 1, 0, 0, 0])
        camera = np.array([1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0], bool)
        p = np.array([0.04, 0.03, 0.001, 0.5, 0.001, 0.004, 0.002, 0.0, 0.02, 0.0, 0.6, 0.0])
        return policy.Coils(ids, labels, camera), p

    def test_multiview_figures(self):
        coils, p = self.multiview_coils()
        self.assertEqual(list(coils.nth_per_coil(p, coils.camera, 2)),
                         [0.03, -np.inf, 0.002, -np.inf, -np.inf])
        # One angle decides: e needs confirm <= 0.04, which also stops h.
        f = coils.figures(p, confirm=0.04, override=0.9)
        self.assertEqual((f["defective_missed"], f["good_stopped"]), (0, 0))
        f = coils.figures(p, confirm=0.1, override=0.9)
        self.assertEqual(f["defective_missed"], 1)
        # Two suspect angles stop e; h (one angle) and g (below suspect) pass.
        f = coils.figures(p, confirm=0.1, override=0.9, suspect=0.01, suspect_angles=2)
        self.assertEqual((f["defective_missed"], f["good_stopped"]), (0, 0))
        # A camera-passed angle is never suspect.
        f = coils.figures(p, confirm=0.1, override=0.9, suspect=0.0005, suspect_angles=2)
        self.assertEqual(f["good_stopped"], 1)  # g: both flagged angles >= 0.0005

    def test_choose_multiview(self):
        coils, p = self.multiview_coils()
        c = policy.choose({"clean": (coils, p)}, margin=1.0, override_good_share=0.0,
                          override_margin=0.5, suspect_angles=2)
        self.assertGreater(c["override"], 0.6)
        # One angle alone would need confirm <= 0.04 minus the margin, which stops h. The pair
        # chosen leaves e to its two angles (suspect below 0.03 minus the margin) and confirm
        # just under f's single angle (0.5 minus the margin): no good coil stopped.
        self.assertEqual(c["defective_coil_conditions_needing_multiview"], 1)
        self.assertGreater(c["confirm"], 0.2)
        self.assertLess(c["confirm"], 0.5)
        self.assertLess(c["suspect"], policy.sigmoid(policy.logit(0.03) - 1.0))
        self.assertGreater(c["suspect"], 0.004)
        self.assertEqual(c["multiview_good_stopped_summed"], 0)
        f = coils.figures(p, c["confirm"], c["override"], c["suspect"], 2)
        self.assertEqual((f["defective_missed"], f["good_stopped"]), (0, 0))
        # A defective coil flagged on one angle only is never left to multi-view.
        single = policy.choose({"clean": (coils, p * 0.1)}, margin=1.0, override_good_share=0.0,
                               override_margin=0.5, suspect_angles=2)
        self.assertLessEqual(single["confirm"], policy.sigmoid(policy.logit(0.05) - 1.0))

if __name__ == "__main__":
    unittest.main()
