"""Relevant-filenames files: exact paths, prefixes, gitignore-style excludes and re-includes."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lightly_airflow.datasource import RelevantFilenames, RelevantFilenamesError

KEYS = [
    "image_1.png", "subdir/image_2.png", "subdir/image_3.png", "subdir/image_40.png",
    "data/a.png", "data/a.tmp.png", "data/x/b.png", "data/x/keep.png", "data/y/c.png", "data/y/deep/z/c.png",
    "data/name with space.png", "other/data/a.png", "ünï/cödé.png",
]


def selected(text: str) -> list[str]:
    rules = RelevantFilenames.parse(text)
    mask = rules.mask(pa.array(KEYS))
    return [k for k, m in zip(KEYS, mask.to_pylist()) if m]


def test_exact_paths_as_in_lightlys_example() -> None:
    assert selected("image_1.png\nsubdir/image_2.png\nsubdir/image_3.png\n") == [
        "image_1.png", "subdir/image_2.png", "subdir/image_3.png",
    ]


def test_prefix_matches_every_depth_and_only_that_folder() -> None:
    assert selected("data/*") == [k for k in KEYS if k.startswith("data/")]
    assert selected("data/") == selected("data/*")
    assert selected("*") == KEYS


def test_excludes_and_reincludes_last_rule_wins() -> None:
    # exclude folder x but re-include x/keep.png; exclude every c.png at any depth; '?' matches a space
    got = selected("data/* x/ !x/keep.png c.png *.tmp.png\nünï/cödé.png")
    assert got == ["data/a.png", "data/x/keep.png", "data/name with space.png", "ünï/cödé.png"]
    # anchored rule (has a '/'): only data/y/c.png, not data/y/deep/z/c.png; '**' crosses folders
    assert "data/y/deep/z/c.png" in selected("data/* y/c.png")
    assert "data/y/c.png" not in selected("data/* y/c.png")
    assert [k for k in selected("data/* **/c.png") if k.endswith("c.png")] == []
    assert selected("data/* name?with?space.png").count("data/name with space.png") == 0


def test_glob_selector_and_character_classes() -> None:
    assert selected("subdir/image_[0-9].png") == ["subdir/image_2.png", "subdir/image_3.png"]
    assert selected("subdir/image_[!2].png") == ["subdir/image_3.png"]
    assert selected("*.png subdir/ !subdir/image_40.png") == [k for k in KEYS if not k.startswith("subdir/") or k.endswith("_40.png")]
    assert selected("da*/x/*") == ["data/x/b.png", "data/x/keep.png"]


def test_comments_blank_lines_and_escapes() -> None:
    assert selected("# a comment\n\n   \nimage_1.png  \n") == ["image_1.png"]
    rules = RelevantFilenames.parse("\\#odd.png\n\\!bang.png")
    assert "#odd.png" in rules and "!bang.png" in rules and "odd.png" not in rules


@pytest.mark.parametrize(
    "line, message",
    [
        ("../escape.png", "must not contain"),
        ("/abs/path.png", "relative"),
        ("!data/a.png", "starts with '!'"),
        ("data/* [abc", "unclosed"),
        ("data/* ../x", "must not contain '..'"),
    ],
)
def test_bad_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(RelevantFilenamesError, match=message) as info:
        RelevantFilenames.parse(f"ok.png\n{line}\n", source=".lightly/relevant.txt")
    assert ".lightly/relevant.txt, line 2" in str(info.value)


def test_lightlys_documented_prefix_with_gitignore_rules_verbatim() -> None:
    """Lightly's docs (first_steps.rst, "Specifying Relevant Files") write the rules from the datasource root:
    "image_1.png, subdir/image_2.png, subdir/image_3.png, subdir/image_41.png, subdir/image_42.png would be
    considered, while subdir/image_40.png would be ignored". The rules were anchored at the prefix a second
    time (subdir/subdir/image_4*), matched nothing, and image_40.png was processed."""
    keys = ["image_1.png", "subdir/image_2.png", "subdir/image_3.png", "subdir/image_40.png", "subdir/image_41.png",
            "subdir/image_42.png"]
    rules = RelevantFilenames.parse("image_1.png\nsubdir/* subdir/image_4* !subdir/image_41.png !subdir/image_42.png\n")
    got = [k for k, m in zip(keys, rules.mask(pa.array(keys)).to_pylist()) if m]
    assert got == ["image_1.png", "subdir/image_2.png", "subdir/image_3.png", "subdir/image_41.png",
                   "subdir/image_42.png"]
