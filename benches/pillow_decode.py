"""Pillow's side of the camera-size JPEG comparison (benches/README.md, issue 14).

Times, on one thread, decode + convert("RGB") + bilinear resize to 256 x 256 of one JPEG
file: with a full decode, and with Pillow's DCT-scaled `draft`. Needs Pillow
(`pip install pillow`, or models/train/.venv/bin/python).

    python benches/pillow_decode.py FILE.jpg
"""

import io
import sys
import time

from PIL import Image


def main(path: str) -> None:
    data = open(path, "rb").read()

    def full():
        return Image.open(io.BytesIO(data)).convert("RGB").resize((256, 256), Image.BILINEAR)

    def draft():
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (256, 256))
        return image.convert("RGB").resize((256, 256), Image.BILINEAR)

    for name, run in (("pillow_full", full), ("pillow_draft", draft)):
        run()
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < 5:
            run()
            runs += 1
        per = (time.perf_counter() - started) / runs * 1000
        print(f"{name}: {per:.2f} ms per image ({runs} runs)")


if __name__ == "__main__":
    main(sys.argv[1])
