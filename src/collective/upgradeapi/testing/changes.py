"""Steps that change each part of a site the change report covers.

The ``changes`` profile (``changes.zcml``) has one step per part, in this
order: content, the catalog, a type, a workflow chain, the role map, actions,
the registry, and a re-import of its ``registry.xml``. Registered with the
test layers, installed only by the change report's tests, which rewind it to
:data:`REWIND`.
"""

from plone.registry import field
from plone.registry import Record
from plone.registry.interfaces import IRegistry
from Products.CMFCore.ActionInformation import Action
from zope.component import getUtility
from zope.component.hooks import getSite
from zope.lifecycleevent import modified


PROFILE = "collective.upgradeapi.testing:changes"
REWIND = "1000"
INDEX = "upgradeapi_changes"
ADDED_RECORD = "collective.upgradeapi.testing.changes.added"
CHANGED_RECORD = "plone.site_title"
BEHAVIOR = "plone.leadimage"
PERMISSION = "Add portal content"
ROLES = ("Manager", "Owner")


#: The document the content step deletes (the tests add it), and the one it adds.
OLD_DOCUMENT = "changes-old"
NEW_DOCUMENT = "changes-new"


def content(tool):
    """Add a document and edit it; delete another."""
    site = getSite()
    site.invokeFactory("Document", NEW_DOCUMENT, title="New")
    site[NEW_DOCUMENT].title = "New, edited"
    modified(site[NEW_DOCUMENT])
    site.manage_delObjects([OLD_DOCUMENT])


def catalog(tool):
    """Add an index and a metadata column; reindex every document."""
    catalog = getSite().portal_catalog
    catalog.addIndex(INDEX, "FieldIndex")
    catalog.addColumn(INDEX)
    for brain in catalog.unrestrictedSearchResults(portal_type="Document"):
        brain._unrestrictedGetObject().reindexObject()


def types(tool):
    """Toggle a behavior of the Document type."""
    fti = getSite().portal_types.Document
    behaviors = list(fti.behaviors)
    if BEHAVIOR in behaviors:
        behaviors.remove(BEHAVIOR)
    else:
        behaviors.append(BEHAVIOR)
    fti.behaviors = tuple(behaviors)


def workflow(tool):
    """Give documents the one-state workflow."""
    getSite().portal_workflow.setChainForPortalTypes(
        ["Document"], ("one_state_workflow",)
    )


def role_map(tool):
    """Give a permission to fewer roles, not acquired."""
    getSite().manage_permission(PERMISSION, list(ROLES), acquire=0)


def actions(tool):
    """Add a user action."""
    category = getSite().portal_actions.user
    category._setObject("upgradeapi_changes", Action("upgradeapi_changes", title="X"))


def registry(tool):
    """Add a record and change one of Plone's."""
    records = getUtility(IRegistry)
    records.records[ADDED_RECORD] = Record(field.TextLine(title="Added"), "added")
    records[CHANGED_RECORD] = "Changed by an upgrade step"
