"""An object's page when its image was replaced under the same key after the run (tests/object_pool.py's pool, made
by the pipeline's stages): it says that the crop and the image shown are cut from the current file, and the crop's
answer carries ``X-Lightly-Content-Changed``; the image is left as it was before (tests/video/test_replaced_files.py
covers images, videos and S3)."""

from __future__ import annotations

import io

import numpy as np
from object_pool import build_object_pool
from PIL import Image
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.datapool import Datapool


def test_an_objects_page_and_crop_say_when_its_image_was_replaced(tmp_path, monkeypatch) -> None:
    pool = build_object_pool(tmp_path / "objects")
    rows = Datapool(pool.uri).read().to_pylist()
    obj = next(r for r in rows if r[C.PARENT_KEY] is not None)
    image = next(r for r in rows if r[C.KEY] == obj[C.PARENT_KEY] and r[C.PARENT_KEY] is None)
    page_url = f"/lightly/pools/objects/samples/{obj[C.SAMPLE_ID]}"
    with ui_client(monkeypatch, {"objects": {"uri": pool.uri}}) as client:
        assert "content-changed" not in client.get(page_url).text
        assert "X-Lightly-Content-Changed" not in client.get(f"{page_url}/image").headers

        path = pool.source / obj[C.PARENT_KEY]
        with Image.open(path) as img:
            flipped = img.convert("RGB").transpose(Image.Transpose.ROTATE_180)
        flipped.save(path)  # the same key, other pixels
        html = client.get(page_url).text
        assert (f"The file at <code>{obj[C.PARENT_KEY]}</code> changed after this object was processed "
                f"(recorded etag <code>{obj[C.ETAG]}</code>") in html
        assert "the crop and the image below are cut from the current file, not the one the scores describe" in html
        crop = client.get(f"{page_url}/image")
        assert crop.status_code == 200 and crop.headers["X-Lightly-Content-Changed"] == "1"
        x, y, w, h = obj[C.OBJECT_CROP_BOX]
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(crop.content)).convert("RGB")),
                              np.asarray(flipped.crop((x, y, x + w, y + h))))
        # The image's own page says it too (the object page draws it from there).
        assert "changed after this sample was processed" in client.get(
            f"/lightly/pools/objects/samples/{image[C.SAMPLE_ID]}").text
        assert client.get(f"/lightly/pools/objects/samples/{image[C.SAMPLE_ID]}/image").headers[
            "X-Lightly-Content-Changed"] == "1"
