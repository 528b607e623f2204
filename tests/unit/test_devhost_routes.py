"""Route templates as the Functions host (ASP.NET routing) matches them."""

from __future__ import annotations

import pytest

from devhost.routes import RouteTable, RouteTemplate


def params(template: str, path: str, prefix: str = "") -> dict[str, str] | None:
    return RouteTemplate.parse(template, prefix).match(path)


def test_named_parameters_are_captured_and_url_decoded() -> None:
    assert params("models/{name}/versions/{version:int}", "/models/res%20net/versions/3") == {
        "name": "res net",
        "version": "3",
    }
    # As ASP.NET Core routing: %2F stays encoded, so it never acts as a separator.
    assert params("files/{name}", "/files/a%2Fb") == {"name": "a%2Fb"}


@pytest.mark.parametrize("value", ["abc", "1.5", "99999999999", ""])
def test_int_constraint_rejects_non_int32(value: str) -> None:
    assert params("items/{id:int}", f"/items/{value}") is None


@pytest.mark.parametrize(
    ("template", "good", "bad"),
    [
        ("x/{v:alpha}", "abc", "ab1"),
        ("x/{v:bool}", "True", "yes"),
        ("x/{v:long}", "99999999999", "1e3"),
        ("x/{v:double}", "-1.5e3", "one"),
        ("x/{v:guid}", "6f9619ff-8b86-d011-b42d-00c04fc964ff", "not-a-guid"),
        ("x/{v:minlength(3)}", "abc", "ab"),
        ("x/{v:maxlength(2)}", "ab", "abc"),
        ("x/{v:length(2,3)}", "abc", "abcd"),
        ("x/{v:range(1,10)}", "10", "11"),
        ("x/{v:min(5)}", "5", "4"),
        ("x/{v:int:max(5)}", "5", "6"),
        ("x/{v:regex(^v\\d+$)}", "v12", "x12"),
    ],
)
def test_constraints(template: str, good: str, bad: str) -> None:
    assert params(template, f"/x/{good}") == {"v": good}
    assert params(template, f"/x/{bad}") is None


def test_unknown_constraint_is_rejected_at_parse_time() -> None:
    with pytest.raises(ValueError, match="unknown route constraint"):
        RouteTemplate.parse("x/{v:nosuch}")


@pytest.mark.parametrize(
    "template",
    ["a/{b?}/c", "a/{*rest}/b", "a/{x}/{x}", "a/{b", "a//b", "a/{1bad}"],
)
def test_invalid_templates(template: str) -> None:
    with pytest.raises(ValueError):
        RouteTemplate.parse(template)


def test_optional_parameter_may_be_missing() -> None:
    assert params("models/{name?}", "/models") == {}
    assert params("models/{name?}", "/models/a") == {"name": "a"}
    assert params("page/{n:int=1}", "/page") == {"n": "1"}


def test_catch_all_takes_the_rest_and_may_be_empty() -> None:
    assert params("files/{*path}", "/files/a/b%20c/d.txt") == {"path": "a/b c/d.txt"}
    assert params("files/{**path}", "/files") == {}


def test_complex_segment() -> None:
    assert params("files/{name}.{ext}", "/files/report.tar.gz") == {
        "name": "report",
        "ext": "tar.gz",
    }


def test_literals_match_case_insensitively_and_trailing_slash_is_tolerated() -> None:
    assert params("heartbeat", "/HeartBeat/") == {}
    assert params("heartbeat", "/heartbeat") == {}
    assert params("heartbeat", "/heartbeat/extra") is None


@pytest.mark.parametrize(("prefix", "path"), [("", "/health"), ("api", "/api/health")])
def test_route_prefix_is_prepended(prefix: str, path: str) -> None:
    table: RouteTable[str] = RouteTable(prefix)
    table.add("health", ["GET"], "health")
    assert table.match("GET", path).route is not None
    other = "/api/health" if prefix == "" else "/health"
    assert table.match("GET", other).status == 404


def test_route_prefix_api_is_the_default() -> None:
    table: RouteTable[str] = RouteTable()
    table.add("health", None, "health")
    assert table.match("GET", "/api/health").status == 200


def make_table() -> RouteTable[str]:
    table: RouteTable[str] = RouteTable("")
    table.add("models/{name}", ["GET", "POST"], "by-name")
    table.add("models/compare", ["POST"], "compare")
    table.add("models/{id:int}", ["GET"], "by-id")
    table.add("models/{*rest}", None, "catch-all")
    table.add("jobs", ["get"], "jobs")
    return table


@pytest.mark.parametrize(
    ("method", "path", "target"),
    [
        ("POST", "/models/compare", "compare"),
        ("GET", "/models/compare", "by-name"),
        ("GET", "/models/42", "by-id"),
        ("GET", "/models/abc", "by-name"),
        ("DELETE", "/models/abc", "catch-all"),
        ("GET", "/models/a/b", "catch-all"),
    ],
)
def test_most_specific_route_among_those_allowing_the_method_wins(
    method: str, path: str, target: str
) -> None:
    match = make_table().match(method, path)
    assert match.status == 200
    assert match.route is not None and match.route.target == target


def test_404_when_no_template_matches() -> None:
    assert make_table().match("GET", "/nothing").status == 404


def test_405_lists_allowed_methods() -> None:
    match = make_table().match("DELETE", "/jobs")
    assert match.status == 405
    assert match.allowed == {"GET"}


def test_route_without_methods_accepts_any_method() -> None:
    table: RouteTable[str] = RouteTable("")
    table.add("any", None, "any")
    for method in ("GET", "POST", "PATCH", "DELETE"):
        assert table.match(method, "/any").status == 200


def test_methods_may_be_enums_from_azure_functions() -> None:
    import azure.functions as func

    table: RouteTable[str] = RouteTable("")
    table.add("x", [func.HttpMethod.GET], "x")
    assert table.match("get", "/x").status == 200
    assert table.match("POST", "/x").status == 405
