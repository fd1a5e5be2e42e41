"""One comparison for every presented secret: equal or not, never an exception."""

from __future__ import annotations

from travelagent.wire.secret import matches


def test_only_the_same_secret_matches() -> None:
    assert matches("k3y", "k3y")
    assert not matches("k3y ", "k3y") and not matches("", "k3y")


def test_an_empty_expected_secret_matches_nothing() -> None:
    assert not matches("", "") and not matches("anything", "")


def test_header_bytes_that_are_not_utf8_are_refused_not_raised() -> None:
    # aiohttp hands undecodable header bytes over as lone surrogates
    assert not matches("\udcff\udcfe", "k3y")
    assert not matches("\ud800", "k3y")
