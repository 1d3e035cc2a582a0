"""Every text of the report page keeps WCAG AA's contrast against the ground it is drawn on (4.5:1; 3:1 for large
text: 24 px, or 18.66 px bold), light and dark, measured on the computed colours in Debian's Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from colour_vision import WHITE, chromium, contrast, rgb

from lightly_airflow.report import write_report

# each text node: its element, colour, nearest opaque background up the tree, font size and weight, its start
TEXTS = """() => { const out = [], walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) { const t = walk.currentNode; if (!t.textContent.trim()) continue;
    const el = t.parentElement, s = getComputedStyle(el); let e = el, bg = null;
    for (; e && !bg; e = e.parentElement) { const b = getComputedStyle(e).backgroundColor;
      if (!b.startsWith('rgba(0, 0, 0, 0)')) bg = b; }
    out.push([el.tagName + '.' + el.className, s.color, bg, parseFloat(s.fontSize), parseInt(s.fontWeight),
              t.textContent.trim().slice(0, 30)]); }
  return out; }"""


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory, digits_run) -> Path:  # noqa: ANN001
    run = digits_run
    return Path(write_report(run.rows, out_uri=str(tmp_path_factory.mktemp("rep")), summary=run.summary,
                             config=run.config, preselected=run.preselected))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_of_the_report_keeps_aa_contrast(report_page: Path, scheme: str) -> None:
    """The light page's "selected" count was #b36b00 on white: 4.2:1 for 21.6 px at weight 600."""
    with chromium() as browser:
        page = browser.new_page(color_scheme=scheme)
        page.goto(report_page.as_uri())
        texts = page.evaluate(TEXTS)
    assert len(texts) > 50
    low = []
    for element, colour, ground, size, weight, text in texts:
        need = 3.0 if size >= 24 or (size >= 18.66 and weight >= 700) else 4.5
        ratio = contrast(rgb(colour), rgb(ground) if ground else WHITE)
        if ratio < need:
            low.append((element, colour, ground, size, weight, text, round(ratio, 2)))
    assert not low, low
