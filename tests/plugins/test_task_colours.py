"""A task's box colour is one function of the task (``colours.task_colours`` among the version's tasks): the same
on an image with one task and on one with two, on each object's own page and in the report's objects figure."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
from object_pool import OBJECT_RUNS, run_objects_pipeline
from ui_client import ui_client

from lightly_airflow import columns as C
from lightly_airflow.colours import TASK_COLOURS, task_colour, task_colours
from lightly_airflow.datapool import Datapool

#: The second task, on the first 6 of 12 images: it sorts before "shapes", so by the former rule "shapes" was the
#: first colour on the other 6 images and the second on these; and its own colour is "shapes"' (#0069b4): "shapes"
#: takes the next one on every page (the version's tasks), where a page that coloured only the tasks it draws would
#: give "shapes" alone (an object's page, its legend) its own.
OTHER = "birds"


def build_two_task_pool(root: Path) -> Path:
    """12 images of the objects demo, the first 6 with a second task (a copy of their boxes), one object run."""
    from lightly_airflow.objects import ObjectsSpec
    from lightly_airflow.objects.demo_data import TASK, add_images

    source, pool = root / "images", root / "pool"
    add_images(source, 0, 12, seed=3, shapes=(1, 3))
    folder = source / ".lightly" / "predictions"
    (folder / OTHER).mkdir()
    shutil.copy(folder / TASK / "schema.json", folder / OTHER / "schema.json")
    (folder / "tasks.json").write_text(json.dumps([TASK, OTHER]))
    for i in range(6):
        shutil.copy(folder / TASK / f"img_{i:04d}.json", folder / OTHER / f"img_{i:04d}.json")
    selection = {"n_samples": 4, "strategies": [{"input": {"type": "EMBEDDINGS", "task": TASK},
                                                 "strategy": {"type": "DIVERSITY"}}]}
    spec = ObjectsSpec(tasks=(TASK, OTHER), padding=0.1, upload=False, selection_tasks=(TASK,))
    run_objects_pipeline(source, pool, OBJECT_RUNS[0], selection, spec)
    return pool


@pytest.fixture(scope="module")
def two_task_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_two_task_pool(tmp_path_factory.mktemp("task-colours"))


@pytest.fixture
def tclient(two_task_pool: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    with ui_client(monkeypatch, {"two": {"uri": f"file://{two_task_pool}"}}) as c:
        yield c


def _box_colours(html: str) -> set[tuple[str, str]]:
    """``(task, stroke colour)`` of each object box of a page's figure (its title: ``key: task · category …``)."""
    svg = html[html.index("<svg"):html.index("</svg>")]
    return {(title.split(": ", 1)[1].split(" · ")[0], stroke)
            for stroke, title in re.findall(r'<rect class="obj[^"]*"[^>]*stroke="(#[0-9a-f]{6})"[^>]*><title>([^<]+)',
                                            svg)}


def test_a_task_has_one_colour_on_every_image_page_and_object_page(tclient, two_task_pool):
    rows = Datapool(f"file://{two_task_pool}").read()
    images = rows.filter(pc.is_null(rows.column(C.PARENT_KEY))).to_pylist()
    objects = rows.filter(pc.is_valid(rows.column(C.PARENT_KEY))).to_pylist()
    assert {o[C.OBJECT_TASK] for o in objects} == {"shapes", OTHER}
    seen: set[tuple[str, str]] = set()
    for sid in [r[C.SAMPLE_ID] for r in images] + [o[C.SAMPLE_ID] for o in objects[::4]]:
        page = tclient.get(f"/lightly/pools/two/samples/{sid}")
        assert page.status_code == 200
        if "<svg" in page.text:
            seen |= _box_colours(page.text)
        legends = re.findall(r'<span class="task"><span class="sw" style="background:(#[0-9a-f]{6})[^"]*"></span>(\w+)<',
                             page.text)  # (the figure's and the crops' legends: one map a page)
        seen |= {(t, c) for c, t in legends}
    by_task: dict[str, set[str]] = {}
    for task, colour in seen:
        by_task.setdefault(task, set()).add(colour)
    want = task_colours(["shapes", OTHER])
    assert by_task == {t: {c} for t, c in want.items()}, by_task  # one colour each, the report's
    assert want["shapes"] != want[OTHER]
    # The objects grid's cards and an image's crop cards name the task after a square of the same colour.
    grid = tclient.get("/lightly/pools/two/samples?show=objects&limit=100").text
    both = next(r for r in images if r[C.KEY] == "img_0000.png")  # (of the first 6: both tasks)
    image = tclient.get(f"/lightly/pools/two/samples/{both[C.SAMPLE_ID]}").text
    for html in (grid, image[image.index('id="objects"'):]):
        cards = set(re.findall(r'<div class="cap">.*?class="sw" style="background:(#[0-9a-f]{6})[^"]*"></span>(\w+) · ',
                               html))
        assert {(t, c) for c, t in cards} == set(want.items()), cards


def test_colours_are_the_task_s_own_and_tasks_of_a_pool_stay_apart():
    # The same colour whatever else is on hand; the report's figure passes only the tasks it draws.
    assert task_colours(["faces"]) == {"faces": task_colour("faces")}
    assert task_colours(["faces", "boxes"])["faces"] == task_colours(["faces", "zebra"])["faces"] == task_colour("faces")
    # "bbox" and "people" hash to the same colour: within a pool's task list the later by name takes the next free.
    assert task_colour("bbox") == task_colour("people")
    both = task_colours(["people"], among=["bbox", "people"])
    assert both["people"] != task_colour("bbox") and both["people"] in TASK_COLOURS
    # A task outside the list (a prediction file's, drawn beside the objects) never moves one of the list's.
    stray = task_colours(["bbox", "people"], among=["people"])
    assert stray["people"] == task_colour("people") and stray["bbox"] != stray["people"]
    assert len(set(task_colours([f"t{i}" for i in range(6)]).values())) == 6
    assert len(set(task_colours([f"t{i}" for i in range(9)]).values())) == 6  # a 7th task shares


def test_predicted_boxes_of_one_task_share_its_colour():
    """Boxes from the prediction files were coloured by their place in the file: a task's two boxes two colours."""
    from lightly_airflow.plugins.pages import _boxes_svg, page_colours

    boxes = [{"task": "cars", "bbox": [1 + 20 * i, 1, 10, 10], "category": "car", "score": 0.9} for i in range(3)]
    strokes = re.findall(r'stroke="(#[0-9a-f]{6})"', _boxes_svg(100, 40, boxes, (), None, page_colours((), (), boxes)))
    assert strokes == [task_colour("cars")] * 3
