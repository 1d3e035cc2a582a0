"""PNG level of selected video frames: bytes and encode time per frame at each zlib level, on real photos.

    python benchmarks/frame_png.py [--sizes 640x360,1280x720] [--frames 12] [--levels 1,2,3,6,9]

For each size, H.264 videos (``video.synthetic.make_scene_video``: a pan across each of scikit-image's bundled
photos below) are decoded with the pipeline's own decoder (``video.decode.decode_frames``) and turned upright
as the frame export does (``video.export._picture``); every frame is then PNG-encoded at each level (Pillow,
one thread, CPU time: other processes move it little) and, for reference, as JPEG quality 95 (lossy: not what
the export writes). Prints KB and ms per frame and each level against Pillow's default 6. The export's level
is ``pixels.PNG_LEVEL``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SCENES = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "cat",
          "brick", "camera", "coins", "grass", "gravel", "moon", "page", "text", "horse")
"""scikit-image's photos that ship inside its wheel (the others download on first use)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--frames", type=int, default=12, help="frames per video (every 4th is encoded)")
    parser.add_argument("--levels", default="1,2,3,6,9")
    args = parser.parse_args()

    from lightly_airflow.pixels import PNG_LEVEL
    from lightly_airflow.video.decode import decode_frames
    from lightly_airflow.video.export import _picture
    from lightly_airflow.video.index import index_video
    from lightly_airflow.video.synthetic import make_scene_video

    levels = [int(v) for v in args.levels.split(",")]
    print(f"machine: {os.cpu_count()} CPU cores (load {os.getloadavg()[0]:.1f}); export level pixels.PNG_LEVEL = "
          f"{PNG_LEVEL}; CPU time of one thread per frame")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            images = []
            for i, name in enumerate(SCENES):
                path = os.path.join(tmp, f"{name}-{size}.mp4")
                make_scene_video(path, name, args.frames, size=(width, height), seed=i)
                info = index_video(path)
                wanted = [(j, info.pts[j]) for j in range(0, info.n_frames, 4)]
                images += [_picture(f.frame)[0] for f in decode_frames(path, wanted) if f.frame is not None]
            sizes: dict[str, float] = {}
            times: dict[str, float] = {}
            for label, options in [*((f"PNG level {lv}", {"format": "PNG", "compress_level": lv}) for lv in levels),
                                   ("JPEG q95 (lossy)", {"format": "JPEG", "quality": 95})]:
                total, start = 0, time.thread_time()
                for image in images:
                    buf = io.BytesIO()
                    image.save(buf, **options)
                    total += buf.tell()
                times[label] = (time.thread_time() - start) / len(images)
                sizes[label] = total / len(images)
            print(f"\n{size}: {len(images)} frames of {len(SCENES)} photos")
            base = "PNG level 6"
            for label in sizes:
                rel = (f"  ({sizes[label] / sizes[base]:.2f}x the bytes, {times[base] / times[label]:.2f}x as fast as "
                       "level 6)") if base in sizes else ""
                print(f"  {label:18s} {sizes[label] / 1024:7.1f} KB  {times[label] * 1e3:7.1f} ms{rel}")


if __name__ == "__main__":
    main()
