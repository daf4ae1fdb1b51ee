"""GET /openapi.json: a valid OpenAPI 3.1 document that covers every route, accurately."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from chalice import Chalice

from app import app
from chalicelib.api import openapi
from chalicelib.core import payloads
from chalicelib.services import schemas, schemas_config
from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _validator(document: dict[str, Any], component: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema, resolving refs against the whole document."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _response_schema(document: dict[str, Any], path: str, method: str, status: int) -> str:
    response = document["paths"][path][method]["responses"][str(status)]
    return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


@pytest.fixture
def document(api: Any) -> dict[str, Any]:
    status, body = api.call("GET", "/openapi.json")
    assert status == 200, body
    return body


def structural_problems(document: dict[str, Any]) -> list[str]:
    """What a validator would catch first: dangling $refs, operations without responses or ids."""
    problems: list[str] = []
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        if not ref.startswith("#/components/schemas/") or ref.rsplit("/", 1)[-1] not in schemas:
            problems.append(f"dangling {ref}")
    ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not operation.get("responses"):
                problems.append(f"{method} {path}: no responses")
            ids.append(operation.get("operationId"))
    if len(ids) != len(set(ids)) or None in ids:
        problems.append("operationIds missing or not unique")
    return problems


def test_openapi_json_is_a_valid_openapi_3_1_document(document: dict[str, Any]) -> None:
    # GIVEN the document served by the app
    # WHEN it is checked: structurally, and by openapi-spec-validator when installed
    problems = structural_problems(document)
    try:
        from openapi_spec_validator import validate
    except ImportError:
        validate = None
    if validate is not None:
        validate(document)

    # THEN it is valid 3.1, with bearer security schemes and no dangling reference
    assert problems == []
    assert document["openapi"].startswith("3.1")
    assert {s["scheme"] for s in document["components"]["securitySchemes"].values()} == {"bearer"}


def test_a_dangling_reference_is_caught() -> None:
    # GIVEN a document whose operation refers to a schema that does not exist
    broken = {
        "paths": {"/x": {"get": {"operationId": "x", "responses": {"200": {"$ref": "#/nope"}}}}},
        "components": {"schemas": {}},
    }

    # WHEN checked  THEN the reference is reported
    assert structural_problems(broken) == ["dangling #/nope"]


VIDEO_ID_ROUTES = ("/v1/videos/{id}", "/v1/videos/{id}/content", "/v1/videos/{id}/remix")


def _relay_routes() -> set[tuple[str, str]]:
    from chalicelib.relay import media_routes
    from chalicelib.relay.app import ID_ROUTES, ROUTES

    routes: dict[str, Any] = {**ROUTES, **ID_ROUTES, **media_routes.ROUTES}
    # The media routes match a video id with a pattern rather than a template.
    for template in VIDEO_ID_ROUTES:
        routes[template] = media_routes.match(template.replace("{id}", "video_1"))
    return {(path, method.lower()) for path, methods in routes.items() for method in methods}


def test_every_route_and_method_of_the_app_is_in_the_document(document: dict[str, Any]) -> None:
    # GIVEN the route tables of the app and of the relay  WHEN compared with the document's paths
    # (the greedy catch-all that 404s unknown paths is the one route that is no operation)
    routed = {
        (path, method.lower())
        for path, methods in app.routes.items()
        for method in methods
        if path != openapi.CATCH_ALL
    } | _relay_routes()
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }

    # THEN both name exactly the same operations
    assert documented == routed


def test_the_document_names_the_relays_routes_and_chalice_serves_none_of_them() -> None:
    documented = {(path, method.lower()) for path, method in openapi.RELAY_ROUTES}
    assert documented == _relay_routes()
    assert not any(path.startswith("/v1") for path in app.routes)


def test_no_route_lacks_its_line_in_the_operations_table(document: dict[str, Any]) -> None:
    # GIVEN the app  WHEN asked which routes have no line in OPERATIONS
    missing = openapi.undocumented_routes(app)
    flagged = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("x-undocumented")
    ]

    # THEN none: add one line per new route to chalicelib.api.openapi.OPERATIONS
    assert missing == [], f"document these routes in chalicelib/api/openapi.py: {missing}"
    assert flagged == []


def test_a_route_without_a_line_still_appears_but_is_flagged() -> None:
    # GIVEN an app with one documented route and one new, undocumented route
    other = Chalice(app_name="other")
    other.route("/health")(lambda: {"status": "ok"})
    other.route("/brand-new/{thing}", methods=["PUT"])(lambda thing: {})

    # WHEN its document is built
    document = openapi.document(other)

    # THEN the new route is there with a generic schema, flagged, and listed as undocumented
    operation = document["paths"]["/brand-new/{thing}"]["put"]
    assert operation["x-undocumented"] is True
    assert operation["parameters"][0]["name"] == "thing"
    assert "requestBody" in operation
    assert "x-undocumented" not in document["paths"]["/health"]["get"]
    assert openapi.undocumented_routes(other) == [("/brand-new/{thing}", "PUT")]


def test_request_bodies_are_the_validating_schemas(document: dict[str, Any]) -> None:
    # GIVEN every operation with a documented request body
    for (path, method), op in openapi.OPERATIONS.items():
        if op.request is None or path not in document["paths"]:
            continue
        # WHEN its request body schema is looked up
        body = document["paths"][path][method.lower()]["requestBody"]
        (name,) = {media["schema"]["$ref"].rsplit("/", 1)[-1] for media in body["content"].values()}
        assert list(body["content"]) == list(op.request_media)

        # THEN it is the validating pydantic class's own JSON Schema, or the relay's field table
        model = getattr(schemas, op.request, None) or getattr(schemas_config, op.request, None)
        if model is not None:
            expected = model.model_json_schema(ref_template="#/components/schemas/{model}")
            expected.pop("$defs", None)
        else:
            expected = openapi.REQUESTS[op.request]
        assert name == op.request
        assert document["components"]["schemas"][name] == expected


def test_relay_request_schemas_follow_the_relay_field_table(document: dict[str, Any]) -> None:
    # GIVEN the relay's own table of checked fields
    chat = document["components"]["schemas"]["ChatCompletionRequest"]

    # WHEN compared with the documented chat request
    required = [name for name, (_, needed) in payloads.FIELDS["chat"].items() if needed]

    # THEN the same fields are required, and unknown fields stay allowed (they pass through)
    assert chat["required"] == required == ["model", "messages"]
    assert chat["properties"]["max_tokens"] == {"type": "integer"}
    assert chat.get("additionalProperties", True) is True


def test_query_parameters_state_their_bounds_and_enums(document: dict[str, Any]) -> None:
    # GIVEN the token listing  WHEN its parameters are read
    params = {p["name"]: p for p in document["paths"]["/tokens"]["get"]["parameters"]}

    # THEN limit is 1..100, status is an enum of the effective statuses, account_id is optional
    assert params["limit"]["schema"]["minimum"] == 1
    assert params["limit"]["schema"]["maximum"] == 100
    assert params["status"]["schema"]["enum"] == list(token_store.STATUS_FILTERS)
    assert params["account_id"].get("required", False) is False
    path_params = document["paths"]["/tokens/{token_id}"]["get"]["parameters"]
    assert {k: path_params[0][k] for k in ("name", "in", "required")} == {
        "name": "token_id",
        "in": "path",
        "required": True,
    }


def test_real_responses_conform_to_their_documented_schemas(
    api: Any, document: dict[str, Any]
) -> None:
    # GIVEN an account created through the API
    created = api.new_account("docs", quota_usd="2.50")
    account_id = created["account"]["id"]
    mk = created["management_key"]

    # WHEN the main reads and writes are made
    answers = {
        ("/admin/accounts", "post", 201): created,
        ("/admin/accounts", "get", 200): api.admin("GET", "/admin/accounts")[1],
        ("/account", "get", 200): api.call("GET", "/account", key=mk)[1],
        ("/tokens", "post", 201): api.call(
            "POST", "/tokens", key=mk, body={"name": "ci", "quota_units": 10, "count": 2}
        )[1],
        ("/tokens", "get", 200): api.call("GET", "/tokens", key=mk)[1],
        ("/tokens/{token_id}", "get", 200): api.call(
            "GET", f"/tokens/{created['default_token']['id']}", key=mk
        )[1],
        ("/health", "get", 200): api.call("GET", "/health")[1],
    }
    status, error = api.call("GET", "/account", key="mk-" + "x" * 48)

    # THEN each body validates against the schema the document gives for that status
    for (path, method, code), body in answers.items():
        _validator(document, _response_schema(document, path, method, code)).validate(body)
    assert status == 401
    _validator(document, _response_schema(document, "/account", "get", 401)).validate(error)
    # AND what the responses describe is what the store holds
    assert account_store.require(account_id).quota_units == 1_250_000
    listed = api.call("GET", "/tokens", key=mk)[1]["data"]
    assert len(listed) == 3
    assert all("key" not in token for token in listed)


def test_a_leaked_key_in_a_listing_would_break_the_schema(document: dict[str, Any]) -> None:
    # GIVEN a listing entry that (wrongly) carries the full key
    token = {
        "id": "a" * 16,
        "account_id": "b" * 16,
        "name": "default",
        "key_preview": "sk-aaa...zzzz",
        "status": "enabled",
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": None,
        "quota_units": None,
        "quota_usd": None,
        "used_units": 0,
        "used_usd": "0.000000",
        "reserved_units": 0,
        "remaining_units": None,
        "remaining_usd": None,
        "total_used_units": 0,
        "reset_period": "never",
        "next_reset_at": None,
        "group": "default",
        "models": [],
        "allow_ips": [],
        "last_used_at": None,
        "rpm_limit": None,
        "tpm_limit": None,
        "max_concurrency": None,
    }
    validator = _validator(document, "TokenList")
    validator.validate({"data": [token], "next_cursor": None})

    # WHEN the key is added  THEN the listing no longer validates
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"data": [{**token, "key": "sk-" + "x" * 48}], "next_cursor": None})
