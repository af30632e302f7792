"""Hostile input on every route, generated (hypothesis) rather than listed: strings with
unpaired surrogates, control and line-separator characters, integers past 64 bits and
Python's 4,300-digit limit, huge page numbers, hostile headers. No input gets a 5xx,
and every job accepted (202) is listed, readable and cancellable: none is lost or stuck.

The app is one nobody consumes, so accepted jobs wait; the test reads each one back
and cancels it. schemathesis covers the documented shapes
(tests/test_openapi.py); these strategies go where a schema's generator does not.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import scaled

from my_app import create_app

#: Characters the other strategies rarely reach: every surrogate, C0 and C1 controls,
#: and the separators Python's str.splitlines() breaks at.
HOSTILE_CHARACTERS = st.one_of(
    st.characters(categories=("Cs",)),  # unpaired surrogates, once escaped in JSON
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    st.sampled_from(["\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x85", "\ufeff", "\\", "/"]),
)
#: Text with at least one hostile character inside ordinary text (so it passes length
#: checks and reaches what stores it), or any text at all.
HOSTILE_TEXT = st.one_of(
    st.builds("{}{}{}".format, st.text(max_size=8), HOSTILE_CHARACTERS, st.text(max_size=8)),
    st.text(st.one_of(HOSTILE_CHARACTERS, st.characters()), max_size=40),
)
#: Integers a JSON body may carry: small, past 64 bits, and past Python's digit limit
#: (as a raw literal: json.dumps itself would refuse to write one).
HUGE_INTEGERS = st.one_of(
    st.integers(-5, 5000),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.integers(max_value=-(2**63)),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | HUGE_INTEGERS | st.floats(allow_nan=False) | HOSTILE_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(HOSTILE_TEXT, children, max_size=3)
    ),
    max_leaves=8,
)
#: Header values a client can send (latin-1 on the wire), controls included.
HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60)

FUZZ = settings(
    max_examples=scaled(150, minimum=40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def json_body(value: Any, huge_literal: bool) -> bytes:
    """``value`` as JSON, ASCII-escaped (surrogates as \\udXXX); with ``huge_literal``,
    a 5,000-digit integer in place of the first 0."""
    text = json.dumps(value, ensure_ascii=True)
    if huge_literal:
        text = text.replace("0", "9" * 5000, 1)
    return text.encode()


def assert_not_5xx(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.get_data()!r}"
    if response.status_code >= 400 and response.mimetype == "application/json":
        assert "message" in response.get_json(), what


@pytest.fixture(scope="module")
def fuzzed_app(redis_database):
    """An app with keys on a database of this module's own, which nobody consumes."""
    return create_app(
        "testing", REDIS_URL=redis_database(), API_KEYS="alice:alice-secret",
        SECRET_KEY="test-secret", MAX_ACTIVE_JOBS=0,
    )  # fmt: skip


ALICE = {"Authorization": "Bearer alice-secret"}


def shaped_body(route: str) -> st.SearchStrategy[dict[str, Any]]:
    """A body of the route's shape, with hostile text and integers in its fields, so
    the request passes the schema's shape and reaches what stores it."""
    if route == "slow":
        seconds = st.one_of(st.integers(0, 3), HUGE_INTEGERS)
        return st.fixed_dictionaries({"name": HOSTILE_TEXT, "seconds": seconds})
    if route == "email":
        return st.fixed_dictionaries(
            {"to": st.just(["ada@example.com"]), "subject": HOSTILE_TEXT, "text": HOSTILE_TEXT}
        )
    return st.fixed_dictionaries(
        {
            "title": HOSTILE_TEXT,
            "sections": st.lists(
                st.fixed_dictionaries({"heading": HOSTILE_TEXT, "text": HOSTILE_TEXT}),
                min_size=1,
                max_size=2,
            ),
        }
    )


BODIES = st.sampled_from(["slow", "email", "report"]).flatmap(
    lambda route: st.tuples(
        st.just(route),
        st.one_of(
            shaped_body(route),
            st.dictionaries(
                st.sampled_from(["name", "seconds", "to", "subject", "text", "title", "sections"]),
                JSON_VALUES,
                max_size=5,
            ),
        ),
    )
)


@FUZZ
@given(
    route_and_body=BODIES,
    huge_literal=st.booleans(),
    idempotency_key=st.none() | HEADER_VALUES,
)
def test_no_body_gets_a_5xx_and_every_accepted_job_is_kept(
    fuzzed_app, route_and_body, huge_literal, idempotency_key
):
    """Fails without the JSON checks: an unpaired surrogate in a string field, or an
    integer literal past 4,300 digits, answered 500."""
    route, fields = route_and_body
    client = fuzzed_app.test_client()
    headers = {**ALICE, "Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    body = json_body(fields, huge_literal)
    response = client.post(f"/api/tasks/{route}", data=body, headers=headers)
    assert_not_5xx(response, f"POST /api/tasks/{route} {body[:200]!r}")
    if response.status_code in (200, 202):
        record = client.get(response.headers["Location"], headers=ALICE)
        assert record.status_code == 200
        assert record.get_json()["state"] in {"QUEUED", "REVOKED"}
        # Cancelled, a waiting job is dropped by the first worker that takes it.
        cancelled = client.delete(response.headers["Location"], headers=ALICE)
        assert cancelled.status_code in (202, 409), cancelled.get_json()


@FUZZ
@given(
    page=st.one_of(
        st.integers(min_value=2**62, max_value=2**80).map(str),
        st.integers(min_value=-5, max_value=10).map(str),
        HEADER_VALUES,
    ),
    page_size=st.one_of(
        st.integers(min_value=1, max_value=100).map(str),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        HEADER_VALUES,
    ),
    state=st.sampled_from([None, None, "QUEUED", "SUCCESS"]) | HOSTILE_TEXT,
    kind=st.sampled_from([None, None, None]) | HOSTILE_TEXT,
)
def test_no_list_query_gets_a_5xx(fuzzed_app, page, page_size, state, kind):
    """Fails without the ledger's bound on a page's offset: a page past 64 bits was a
    Redis error, answered 500."""
    query = {"page": page, "page_size": page_size}
    query.update({name: value for name, value in (("state", state), ("kind", kind)) if value})
    encoded = urlencode(query, encoding="utf-8", errors="surrogatepass")
    response = fuzzed_app.test_client().get("/api/tasks", query_string=encoded, headers=ALICE)
    assert_not_5xx(response, f"GET /api/tasks {query!r}")


@FUZZ
@given(
    segment=HOSTILE_TEXT,
    seconds=st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), HEADER_VALUES),
    method=st.sampled_from(["GET", "DELETE", "POST"]),
)
def test_no_path_or_query_gets_a_5xx(fuzzed_app, segment, seconds, method):
    client = fuzzed_app.test_client()
    # As a client sends it: percent-encoded bytes (a surrogate as its invalid UTF-8).
    segment = quote(segment.encode("utf-8", "surrogatepass"), safe="")
    for path in (f"/api/tasks/{segment}", f"/status/{segment}", f"/api/tasks/{segment}/retry"):
        response = client.open(path, method=method, headers=ALICE)
        assert_not_5xx(response, f"{method} {path!r}")
    response = client.get(f"/run-task/{segment}", query_string={"seconds": seconds}, headers=ALICE)
    assert_not_5xx(response, f"GET /run-task/{segment!r}?seconds={seconds!r}")
    if response.status_code == 202:
        client.delete(f"/api/tasks/{response.get_json()['task_id']}", headers=ALICE)


@FUZZ
@given(
    # A path that starts well, then a hostile character: where open redirects hide.
    next_page=st.builds("/{}{}".format, HOSTILE_CHARACTERS, st.text(max_size=12)) | HOSTILE_TEXT,
    key=HOSTILE_TEXT,
    authorization=HEADER_VALUES,
    origin=st.none() | HEADER_VALUES,
)
def test_no_sign_in_or_header_gets_a_5xx_or_leaves_the_site(
    fuzzed_app, next_page, key, authorization, origin
):
    """Fails without the same-site check of ``next``: CR/LF answered 500, and a slash, a
    control character and a host led off the site."""
    client = fuzzed_app.test_client()
    headers = {"Origin": origin} if origin is not None else {"Sec-Fetch-Site": "same-origin"}
    # As a browser sends the form: bytes (a surrogate as its invalid UTF-8).
    form = urlencode(
        {"key": key or "alice-secret", "next": next_page}, encoding="utf-8", errors="surrogatepass"
    )
    response = client.post(
        "/sign-in", data=form, content_type="application/x-www-form-urlencoded", headers=headers
    )
    assert_not_5xx(response, f"POST /sign-in next={next_page!r}")
    # Decoded, as a lenient browser or proxy might read it.
    location = unquote(response.headers.get("Location", "/"))
    assert location.startswith("/") and not location.startswith("//"), location
    assert not any(ord(char) < 0x20 or char == "\\" for char in location), location
    response = client.get("/api/tasks", headers={"Authorization": authorization})
    assert_not_5xx(response, f"GET /api/tasks Authorization={authorization!r}")
