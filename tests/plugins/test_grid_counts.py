"""The grid's total and its count of images a browser cannot show: one query, kept per version and scope, so a
grid page scans the pool once for both and its next pages not again (a pool of 800 small data files: ~0.3 s a
scan)."""

from __future__ import annotations

import pytest

from lightly_airflow.plugins import query as Q


def test_total_and_unviewable_are_one_query_kept_for_the_next_page(client, configured, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    want = Q.View(Q.PoolSpec(name="main", uri=configured.uri)).sql(
        'SELECT COUNT(*) AS n FROM pool WHERE "metadata.note" = \'digit 3\'').column("n")[0].as_py()
    counts: list[str] = []
    real_sql = Q.View.sql

    def sql(self: Q.View, text: str):  # type: ignore[no-untyped-def]
        if text.startswith("SELECT COUNT(*)"):
            counts.append(text)
        return real_sql(self, text)

    monkeypatch.setattr(Q.View, "sql", sql)
    params = {"in.metadata.note": "digit 3", "limit": 2}  # (a scope with a condition: its count scans)
    first = client.get("/lightly/pools/main/samples", params=params)
    assert first.status_code == 200
    asked = [t for t in counts if "metadata.note" in t]
    assert len(asked) == 1 and "ends_with" in asked[0], counts
    assert want > 2 and f"<b>{want}</b> samples match" in first.text
    second = client.get("/lightly/pools/main/samples", params={**params, "offset": 2})
    assert second.status_code == 200 and f"<b>{want}</b> samples match" in second.text
    assert len([t for t in counts if "metadata.note" in t]) == 1, counts  # (the next page: kept)
