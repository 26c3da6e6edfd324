"""The engine's image list is asked again when a removal raced it, and only then.

The race itself needs another run's removal at the moment the engine reads that image's
content, which no test can time; these tests give the list the engine's own answer to it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from tierharness.engine import image_list
from tierharness.engine.image_list import image_summaries
from tierharness.errors import HarnessError

# What the engine answered when a removal deleted an image's content while it listed.
RACED = '404 Client Error: Not Found ("content digest sha256:6439b0062253: not found")'
SUMMARY = {"Id": "sha256:aa", "RepoTags": ["harness-test/listed:1"]}


def _engine(answers: list[Exception | None]) -> tuple[Any, list[dict[str, Any]]]:
    """A client whose image list gives `answers` in turn (None: the summaries), and its calls."""
    calls: list[dict[str, Any]] = []

    def images(**kwargs: Any) -> list[dict[str, Any]]:
        calls.append(kwargs)
        answer = answers[len(calls) - 1]
        if answer is not None:
            raise answer
        return [SUMMARY]

    return SimpleNamespace(api=SimpleNamespace(images=images)), calls


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_list, "_PAUSE", 0.0)


def test_a_list_that_raced_a_removal_is_listed_again() -> None:
    client, calls = _engine([NotFound(RACED), NotFound(RACED), None])
    assert image_summaries(client, name="harness-test/listed", label="k=v", intermediate=True) == [SUMMARY]
    assert len(calls) == 3
    assert calls[0] == {"name": "harness-test/listed", "filters": {"label": "k=v"}, "all": True}


def test_a_list_that_keeps_failing_is_an_error_naming_what_was_checked() -> None:
    client, calls = _engine([NotFound(RACED)] * image_list._ATTEMPTS)
    with pytest.raises(HarnessError) as err:
        image_summaries(client)
    assert len(calls) == image_list._ATTEMPTS
    message = str(err.value)
    assert f"failed {image_list._ATTEMPTS} times in a row" in message
    assert "content digest" in message  # the engine's own words
    assert "GET /images/json" in message
    assert "run it again" in message


def test_any_other_engine_error_is_raised_at_once() -> None:
    client, calls = _engine([APIError("500 Server Error: the engine broke")])
    with pytest.raises(APIError, match="the engine broke"):
        image_summaries(client)
    assert len(calls) == 1
