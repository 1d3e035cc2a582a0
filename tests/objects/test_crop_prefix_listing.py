"""Pruning an image's stale crops on S3 listed its whole crop folder (session 64 audit): a flat folder of many
selected images was listed in full once per task on every run (3,000 crops on moto: 3.0 s for 3 images pruned).
It now lists only the prefixes of the images it prunes (0.15 s), and the whole folder past
``crops.PREFIX_LISTINGS_MAX`` images; either way it removes the same files."""

from __future__ import annotations

from typing import Any

import pytest
import s3fs

from lightly_airflow.objects import crops
from lightly_airflow.storage import filesystem, join_uri


def _setup(bucket: Any) -> tuple[Any, str, str]:
    root = join_uri(bucket.uri, "src", ".lightly")
    fs, base = filesystem(root, bucket.credentials)
    fs.pipe({f"{base}/crops/cars/a/img_{i}-{j}-jpg.png": b"x" for i in range(1, 13) for j in range(3)})
    return fs, base, root


@pytest.mark.parametrize("limit", [crops.PREFIX_LISTINGS_MAX, 0])
def test_pruning_on_s3_lists_only_the_pruned_images_prefixes(s3_bucket: Any, monkeypatch: pytest.MonkeyPatch,
                                                            limit: int) -> None:
    fs, base, root = _setup(s3_bucket)
    fs.ls(f"{base}/crops/cars/a")  # (this process's cached listing is not used: the prune's listing is fresh)
    other = type(fs)(skip_instance_cache=True, **fs.storage_options)  # (another worker, after the listing)
    other.rm_file(f"{base}/crops/cars/a/img_1-2-jpg.png")
    other.pipe({f"{base}/crops/cars/a/img_1-5-jpg.png": b"x"})
    listed: list[str] = []
    real = s3fs.S3FileSystem._iterdir

    def spy(self: Any, bucket: str, **kwargs: Any) -> Any:
        listed.append(kwargs.get("prefix", ""))
        return real(self, bucket, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_iterdir", spy)
    monkeypatch.setattr(crops, "PREFIX_LISTINGS_MAX", limit)
    # img_1 keeps its crop 0 (1 and the new 5 go), img_2 none; img_12 (its name shares img_1's head) keeps all.
    removed, failed = crops.prune_stale_crops(root, {("a/img_1.jpg", "cars"): {0}, ("a/img_2.jpg", "cars"): set()},
                                              s3_bucket.credentials)
    assert (removed, failed) == (1 + 1 + 3, 0)
    during = list(listed)
    left = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{base}/crops/cars/a", refresh=True))
    assert "img_1-0-jpg.png" in left and not {n for n in left if n.startswith(("img_1-", "img_2-"))} - {"img_1-0-jpg.png"}
    assert sum(n.startswith("img_12-") for n in left) == 3 and len(left) == 12 * 3 - 1 - 3 - 1  # (-2, +5)
    if limit:
        assert sorted(during) == ["src/.lightly/crops/cars/a/img_1-", "src/.lightly/crops/cars/a/img_2-"]
    else:
        assert during == ["src/.lightly/crops/cars/a/"]
