"""``Review.keep``: the picks a reviewed commit keeps, and a left-out key that is no pick refused."""

from __future__ import annotations

import pytest

from lightly_airflow.review import Review, ReviewError


class CountingPicks(list[str]):
    """The proposal's picks, counting how often something iterates over them."""

    iterations = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).iterations += 1
        return super().__iter__()


def test_keep_reads_the_picks_once_however_many_keys_are_left_out() -> None:
    picks = CountingPicks(f"k{i:05d}" for i in range(2000))
    dropped = tuple(picks[::2])  # 1000 keys left out
    review = Review("decide", approved=True, dropped=dropped)
    CountingPicks.iterations = 0
    kept = review.keep(picks)
    assert kept == set(picks[1::2])
    assert CountingPicks.iterations == 1  # (a set of the picks per left-out key was 1001 passes over them)


def test_keep_refuses_a_key_that_is_no_pick() -> None:
    review = Review("decide", approved=True, dropped=("a", "nope"))
    with pytest.raises(ReviewError, match="1 key\\(s\\) that are not among the proposal's 2 picks: 'nope'"):
        review.keep(["a", "b"])
    assert Review("decide", approved=True).keep(["a", "b"]) == {"a", "b"}
