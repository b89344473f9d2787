"""Property-based tests: any input gets a 4xx JSON answer or the documented
success, never a 500, and writes nothing.

The body parser is checked on thousands of generated inputs in-process; the
services over HTTP on fewer, slower ones (every method and sub-path).
"""

from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.services.upgrade import body
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
from urllib.parse import quote

import json


KEYS = ["dry_run", "dryRun", "profiles", "steps", "commit", "mark_done", "stamp"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
known_key_bodies = st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=8),
    json_values | st.sampled_from(["all", "run", "profile", "step"]),
    max_size=4,
)
raw_bodies = st.one_of(
    known_key_bodies.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60),
)


@settings(max_examples=2000, deadline=None)
@given(raw=raw_bodies, query=st.dictionaries(st.text(max_size=6), st.just([""])))
def test_parser_accepts_or_refuses_with_400(raw, query):
    try:
        given = body.parse(raw, query)
    except BadInput as error:
        assert error.status == 400
        assert error.body()["message"]
        assert len(json.dumps(error.body())) < 10_000
        return
    assert not query
    if "profile_ids" in given:
        assert list(given) == ["profile_ids"] and given["profile_ids"]
        return
    selection = given["selection"]
    assert isinstance(given["dry_run"], bool)
    assert (
        selection.profiles is None
        or selection.profiles == "all"
        or all(isinstance(p, str) and p for p in selection.profiles)
    )
    assert given["commit"] in ("run", "profile", "step")


segments = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.²%", max_size=8)
    | st.sampled_from(["status", "history", "lock", "run", "1", "99"]),
    max_size=3,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    method=st.sampled_from(["get", "post", "delete"]),
    path=segments,
    raw=raw_bodies,
)
def test_services_never_answer_500_and_write_nothing(api, snapshot, method, path, raw):
    """On a site with nothing pending, so that a valid run changes nothing."""
    before = snapshot()
    # Each segment percent-encoded, as a client does: a raw "%80" is not
    # UTF-8, which Zope's publisher refuses with a 500 before any add-on runs.
    url = "/".join(["/@upgrade", *(quote(p, safe="") for p in path)])
    url = url.replace("//", "/")
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
    headers = {"Content-Type": "application/json"}

    response = api.request(method.upper(), url, data=data, headers=headers)

    assert response.status_code < 500, (method, url, raw, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(response.json(), dict)
    assert snapshot() == before
