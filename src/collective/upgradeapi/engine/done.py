"""Steps run on their own, ahead of their profile's recorded version.

GenericSetup records one version per profile. When a single step runs while
earlier steps of its profile are still pending, the version cannot move past
it; this record keeps it from running again. Entries are dropped once the
profile's version moves past them.
"""

from persistent.mapping import PersistentMapping
from zope.annotation.interfaces import IAnnotations


KEY = "collective.upgradeapi.done"


def _storage(site, create=False):
    annotations = IAnnotations(site)
    storage = annotations.get(KEY)
    if storage is None and create:
        storage = annotations[KEY] = PersistentMapping()
    return storage


def done_step_ids(site, profile_id):
    """The ids of the steps of ``profile_id`` that ran on their own.

    :param site: the Plone site.
    :param profile_id: a GenericSetup profile id.
    :returns: a frozenset of step ids (empty when none).
    """
    storage = _storage(site)
    if not storage:
        return frozenset()
    return frozenset(storage.get(profile_id, ()))


def set_done_step_ids(site, profile_id, step_ids):
    """Replace the record for ``profile_id``; an empty set removes it."""
    step_ids = frozenset(step_ids)
    storage = _storage(site, create=bool(step_ids))
    if storage is None:
        return
    if step_ids:
        if frozenset(storage.get(profile_id, ())) != step_ids:
            storage[profile_id] = tuple(sorted(step_ids))
    elif profile_id in storage:
        del storage[profile_id]
