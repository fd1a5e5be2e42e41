"""One way to open the project's SQLite files: the page-cache bound from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from travelagent.sqlite import CACHE_KIB_ENV, open_db, open_reader


def test_the_page_cache_bound_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "x.db"
    monkeypatch.setenv(CACHE_KIB_ENV, "256")
    conn = open_db(db, "CREATE TABLE IF NOT EXISTS t (x)")
    reader = open_reader(db)
    try:
        assert conn.execute("PRAGMA cache_size").fetchone() == (-256,)
        assert reader.execute("PRAGMA cache_size").fetchone() == (-256,)
        with pytest.raises(Exception, match="readonly"):
            reader.execute("INSERT INTO t VALUES (1)")
    finally:
        conn.close()
        reader.close()


@pytest.mark.parametrize("bad", ["0", "-5", "lots", "1.5"])
def test_a_bad_page_cache_bound_is_refused_with_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv(CACHE_KIB_ENV, bad)
    with pytest.raises(ValueError, match=CACHE_KIB_ENV):
        open_db(tmp_path / "x.db", "")
