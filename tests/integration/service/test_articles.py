"""The service against real Postgres and Redis. Several of these would fail if two
xdist workers shared a database: exact counts, fixed slugs, ids starting at 1."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def create(
    client: TestClient, title: str, body: str = "some body", tags: list[str] | None = None, **extra: object
) -> dict:
    response = client.post("/v1/articles", json={"title": title, "body": body, "tags": tags or [], **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_then_get_roundtrip(client: TestClient) -> None:
    made = create(client, "Hello World", "first post", ["intro"])
    assert made["slug"] == "hello-world"
    got = client.get(f"/v1/articles/{made['id']}")
    assert got.status_code == 200
    assert got.json() == made


@pytest.mark.parametrize("n", range(6))
def test_each_test_starts_from_an_empty_database(client: TestClient, n: int) -> None:
    # Run across workers at once: a shared database would show other tests' rows,
    # a fixed slug would collide, and ids would not restart at 1.
    assert client.get("/v1/articles").json()["total"] == 0
    made = [create(client, f"Shared slug {i}", tags=["count"]) for i in range(n + 1)]
    assert made[0]["id"] == 1
    page = client.get("/v1/articles", params={"tag": "count"}).json()
    assert page["total"] == n + 1


@pytest.mark.parametrize("attempt", range(4))
def test_duplicate_slug_is_a_409_not_a_500(client: TestClient, attempt: int) -> None:
    create(client, "Unique title", slug="always-the-same")
    response = client.post("/v1/articles", json={"title": "x", "body": "y", "slug": "always-the-same"})
    assert response.status_code == 409
    assert "always-the-same" in response.json()["detail"]


def test_update_and_delete(client: TestClient) -> None:
    made = create(client, "Draft", "old body")
    patched = client.patch(f"/v1/articles/{made['id']}", json={"body": "new body", "tags": ["edited"]})
    assert patched.status_code == 200
    assert patched.json()["body"] == "new body"
    assert patched.json()["tags"] == ["edited"]
    assert patched.json()["updated_at"] >= made["updated_at"]
    assert client.delete(f"/v1/articles/{made['id']}").status_code == 204
    assert client.get(f"/v1/articles/{made['id']}").status_code == 404
    assert client.delete(f"/v1/articles/{made['id']}").status_code == 404
    assert client.patch(f"/v1/articles/{made['id']}", json={"body": "x"}).status_code == 404


def test_full_text_search_ranks_title_matches_first(client: TestClient) -> None:
    body_hit = create(client, "Cooking notes", "a recipe mentioning postgres once")
    title_hit = create(client, "Postgres internals", "about the planner")
    create(client, "Unrelated", "nothing to see")
    page = client.get("/v1/articles", params={"q": "postgres"}).json()
    assert page["total"] == 2
    assert [a["id"] for a in page["items"]] == [title_hit["id"], body_hit["id"]]


def test_tag_filter_and_pagination(client: TestClient) -> None:
    for i in range(7):
        create(client, f"Paged {i}", tags=["paged"] if i % 2 == 0 else ["other"])
    first = client.get("/v1/articles", params={"tag": "paged", "limit": 3}).json()
    second = client.get("/v1/articles", params={"tag": "paged", "limit": 3, "offset": 3}).json()
    assert first["total"] == second["total"] == 4
    assert len(first["items"]) == 3
    assert len(second["items"]) == 1
    assert {a["id"] for a in first["items"]}.isdisjoint({a["id"] for a in second["items"]})


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "", "body": "x"}, "title"),
        ({"title": "t", "body": "x", "tags": ["Not Valid"]}, "tags"),
        ({"title": "t", "body": "x", "slug": "-bad"}, "slug"),
        ({"title": "t", "body": "x", "unexpected": 1}, "unexpected"),
        ({"body": "x"}, "title"),
    ],
)
def test_validation_errors_are_422_with_the_field_named(
    client: TestClient, payload: dict, field: str
) -> None:
    response = client.post("/v1/articles", json=payload)
    assert response.status_code == 422
    assert any(field in map(str, err["loc"]) for err in response.json()["detail"])


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"tag": "UPPER"}, {"q": ""}]
)
def test_bad_list_parameters_are_422(client: TestClient, params: dict) -> None:
    assert client.get("/v1/articles", params=params).status_code == 422


def test_bad_ids_are_4xx(client: TestClient) -> None:
    assert client.get("/v1/articles/abc").status_code == 422
    assert client.get("/v1/articles/0").status_code == 422
    assert client.patch("/v1/articles/1", json={}).status_code == 422


# Input Postgres cannot take must be refused by validation (422), never reach it (500).
@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/articles", {"json": {"title": "a\x00b", "body": "x"}}),
        ("POST", "/v1/articles", {"json": {"title": "t", "body": "x\x00y"}}),
        ("GET", "/v1/articles", {"params": {"q": "a\x00b"}}),
        ("PATCH", "/v1/articles/1", {"json": {"title": None}}),
        ("PATCH", "/v1/articles/1", {"json": {"body": "\x00"}}),
        ("GET", "/v1/articles/99999999999999999999", {}),
    ],
)
def test_input_postgres_cannot_store_is_422(client: TestClient, method: str, path: str, kwargs: dict) -> None:
    assert client.post("/v1/articles", json={"title": "t", "body": "b"}).status_code == 201
    assert client.request(method, path, **kwargs).status_code == 422
