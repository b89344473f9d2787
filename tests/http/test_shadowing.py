"""Content cannot take the API's place at the site root.

No door creates, copies, moves or renames content to ``@upgrade`` (or to the
name of any REST service of the site root) there: plone.restapi, WebDAV, the
ZMI, the Python API. Content made before the add-on was installed does not
answer in the service's place. See ``services/guard.py``.
"""

from plone.app.testing import login
from plone.app.testing import setRoles
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME

import pytest
import requests
import transaction


NAME = "@upgrade"


@pytest.fixture
def manager(site):
    """The test user, Manager, logged in here (for the Python API)."""
    setRoles(site, TEST_USER_ID, ["Manager"])
    login(site, TEST_USER_NAME)
    transaction.commit()


@pytest.fixture
def doc(site, manager):
    """A Document ``doc`` at the site root and a folder ``sub`` holding a
    Document ``@upgrade`` (a name only the site root reserves), committed."""
    site.invokeFactory("Document", "doc", title="Doc")
    site.invokeFactory("Folder", "sub", title="Sub")
    site["sub"].invokeFactory("Document", NAME, title="Not the API")
    transaction.commit()
    return site["doc"]


def assert_refused(response, name=NAME):
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["type"] == "BadRequest"
    assert data["id"] == name
    assert f"'{name}' cannot be the id of content at the site root" in data["message"]


# -- REST ------------------------------------------------------------------------


@pytest.fixture
def as_role(site, session_for, sync):
    """Return ``session(role)``: a session of a new user with that role."""

    def session(role):
        sync()
        user = role.lower().replace(" ", "-")
        site.acl_users.userFolderAddUser(user, f"{user}-secret", [role], [])
        transaction.commit()
        return session_for(user, f"{user}-secret")

    return session


@pytest.mark.parametrize("role", ["Contributor", "Site Administrator"])
def test_rest_create_is_refused(as_role, database, example, role):
    before = database()

    response = as_role(role).post(
        "/", json={"@type": "Folder", "id": NAME, "title": "Shadow"}
    )

    if role == "Contributor":
        example("reserved_id", response)
    assert_refused(response)
    assert database() == before


def test_rest_create_named_like_another_service_is_refused(api, database):
    """``@search`` is plone.restapi's: content of that name would hide it."""
    before = database()

    response = api.post("/", json={"@type": "Folder", "id": "@search", "title": "S"})

    assert_refused(response, "@search")
    assert "GET @search" in response.json()["message"]
    assert database() == before


@pytest.mark.parametrize(
    "path, name",
    [("", "@no-such-service"), ("/sub", "@search")],
    ids=["root", "folder"],
)
def test_rest_create_of_other_at_names_is_allowed(api, doc, site, sync, path, name):
    """Only names of services at the site root are reserved."""
    response = api.post(
        path or "/", json={"@type": "Document", "id": name, "title": "T"}
    )

    assert response.status_code == 201, response.text
    sync()
    assert name in (site["sub"] if path else site).objectIds()


# -- WebDAV ----------------------------------------------------------------------


def dav(site, method, path, **headers):
    from plone.app.testing import SITE_OWNER_NAME
    from plone.app.testing import SITE_OWNER_PASSWORD

    return requests.request(
        method,
        f"{site.absolute_url()}{path}",
        auth=(SITE_OWNER_NAME, SITE_OWNER_PASSWORD),
        headers=headers,
        data=b"" if method != "PUT" else b"Some text",
    )


@pytest.mark.parametrize("method", ["MKCOL", "PUT"])
def test_webdav_create_at_the_api_is_refused(site, doc, database, method):
    """``MKCOL``/``PUT`` on ``@upgrade`` reach the API, which refuses them."""
    before = database()

    response = dav(site, method, f"/{NAME}")

    assert response.status_code == 405, response.text
    assert response.json()["type"] == "MethodNotAllowed"
    assert database() == before


@pytest.mark.parametrize("method", ["MKCOL", "PUT"])
def test_webdav_create_named_like_another_service_is_refused(
    site, doc, database, method
):
    before = database()

    response = dav(site, method, "/@search")

    assert_refused(response, "@search")
    assert database() == before


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
@pytest.mark.parametrize("source", ["/doc", f"/sub/{NAME}"])
def test_webdav_move_or_copy_to_the_api_is_refused(site, doc, database, method, source):
    before = database()

    response = dav(site, method, source, Destination=f"{site.absolute_url()}/{NAME}")

    assert_refused(response)
    assert database() == before
    assert NAME in site["sub"].objectIds()


# -- the classic UI: the ZMI's rename form ----------------------------------------


def test_zmi_rename_is_refused(site, doc, database):
    """The ZMI keeps ids as typed (Plone's own forms make ``upgrade`` of
    ``@upgrade``): a short HTML page, as for every browser form."""
    before = database()

    response = dav(
        site,
        "POST",
        "/manage_renameObjects?ids:list=doc&new_ids:list=%40upgrade",
        Accept="text/html",
    )

    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert "cannot be the id of content at the site root" in response.text
    assert database() == before


def test_plone_forms_normalise_the_name(site, doc):
    from zope.container.interfaces import INameChooser

    assert INameChooser(site).chooseName(NAME, doc) == "upgrade"


# -- the Python API --------------------------------------------------------------


def _create(site):
    from plone import api

    api.content.create(container=site, type="Folder", id=NAME, title="Shadow")


def _invoke(site):
    site.invokeFactory("Folder", NAME)


def _rename(site):
    site.manage_renameObject("doc", NAME)


def _api_rename(site):
    from plone import api

    api.content.rename(obj=site["doc"], new_id=NAME)


def _api_move(site):
    from plone import api

    api.content.move(source=site["doc"], target=site, id=NAME)


def _cut_paste(site):
    site.manage_pasteObjects(site["sub"].manage_cutObjects([NAME]))


def _copy_paste(site):
    site.manage_pasteObjects(site["sub"].manage_copyObjects([NAME]))


@pytest.mark.parametrize(
    "change",
    [_create, _invoke, _rename, _api_rename, _api_move, _cut_paste, _copy_paste],
    ids=lambda change: change.__name__.strip("_"),
)
def test_python_api_is_refused(site, doc, database, change):
    from collective.upgradeapi.errors import ReservedName

    before = database()

    with pytest.raises(ReservedName) as raised:
        change(site)

    assert raised.value.status == 400
    assert NAME not in site.objectIds()  # refused before any change
    transaction.abort()
    assert database() == before


# -- content made before the add-on was installed ---------------------------------


@pytest.fixture
def shadow(site):
    """A Folder ``@upgrade`` with a Document ``lock``, put in place as if made
    before the add-on was installed (``_setObject`` without events)."""
    from plone.dexterity.utils import createContent

    folder = createContent("Folder", id=NAME, title="Shadow")
    site._setObject(NAME, folder, suppress_events=True)
    document = createContent("Document", id="lock", title="A document")
    site[NAME]._setObject("lock", document, suppress_events=True)
    transaction.commit()


def test_get_answers_the_service(api, site, shadow):
    for path in ("", "/status", "/history", "/lock"):
        response = api.get(f"/{NAME}{path}")

        assert response.status_code == 200, response.text
        assert response.headers["X-Upgrade-Service"] == "collective.upgradeapi"
        assert response.json()["@id"].endswith(f"/{NAME}{path}")
    assert "needs_upgrade" in api.get(f"/{NAME}").json()
    assert api.get(f"/{NAME}/lock").json() == {
        "@id": f"{site.absolute_url()}/{NAME}/lock",
        "lock": None,
    }


@pytest.mark.parametrize(
    "path, status, error_type",
    [
        ("/lock", 404, "NotFound"),
        ("/run", 404, "NotFound"),
        ("", 405, "MethodNotAllowed"),
    ],
)
def test_delete_never_deletes_the_content(
    api, site, sync, shadow, database, path, status, error_type
):
    before = database()

    response = api.delete(f"/{NAME}{path}")

    # No lock to break, no run to cancel; @upgrade itself is not deleted.
    assert response.status_code == status, response.text
    assert response.headers["X-Upgrade-Service"] == "collective.upgradeapi"
    assert response.json()["type"] == error_type
    assert database() == before
    assert site[NAME].objectIds() == ["lock"]


def test_post_runs_the_service(api, shadow, rewind, snapshot):
    rewind({"collective.upgradeapi.testing:base": "1000"})

    response = api.post(
        f"/{NAME}", json={"profiles": ["collective.upgradeapi.testing:base"]}
    )

    assert response.status_code == 200, response.text
    assert response.json()["committed"] is True
    assert snapshot()["versions"]["collective.upgradeapi.testing:base"] == ("1003",)


def test_patch_never_edits_the_content(api, site, sync, shadow, database):
    before = database()

    response = api.patch(f"/{NAME}", json={"title": "Changed"})

    assert response.status_code == 405, response.text
    assert database() == before
    assert site[NAME].title == "Shadow"


def test_the_content_can_be_renamed_away(site, manager, shadow, sync):
    site.manage_renameObject(NAME, "old-upgrade")
    transaction.commit()
    sync()

    assert NAME not in site.objectIds()
    assert site["old-upgrade"].objectIds() == ["lock"]
