"""What the management API does with a body's declared media type: JSON read whatever the
header says among those clients really send, anything else an OpenAI-shaped 415."""

from __future__ import annotations

from typing import Any


def test_a_body_of_another_media_type_is_an_openai_shaped_415_that_changes_nothing(
    api: Any,
) -> None:
    created = api.new_account("acme", quota_usd="1")
    mk = created["management_key"]
    before = api.call("GET", "/tokens", key=mk)[1]["data"]
    status, body = api.call(
        "POST", "/tokens", key=mk, raw="<name>k</name>", headers={"Content-Type": "application/xml"}
    )
    assert status == 415, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
    assert api.call("GET", "/tokens", key=mk)[1]["data"] == before


def test_a_delete_is_carried_out_whatever_media_type_it_declares(api: Any) -> None:
    # urllib and some HTTP libraries declare form-urlencoded on any request with a body
    created = api.new_account("acme", quota_usd="1")
    mk = created["management_key"]
    status, made = api.call("POST", "/tokens", key=mk, body={"name": "k"})
    assert status == 201
    token_id = made["data"][0]["id"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = api.call("DELETE", f"/tokens/{token_id}", key=mk, raw="x=1", headers=form)
    assert status == 204, body


def test_media_types_match_as_chalice_matches_them_and_an_unknown_path_is_still_a_404(
    api: Any,
) -> None:
    created = api.new_account("acme", quota_usd="1")
    mk = created["management_key"]
    for declared in ("application/json, text/plain", "*/*", "application/json; charset=utf-8"):
        status, body = api.call(
            "POST", "/tokens", key=mk, body={"name": "k"}, headers={"Content-Type": declared}
        )
        assert status == 201, (declared, body)
    status, body = api.call(
        "POST", "/no/such/path", key=mk, raw="x", headers={"Content-Type": "multipart/form-data"}
    )
    assert status == 404 and body["error"]["code"] == "not_found", body
