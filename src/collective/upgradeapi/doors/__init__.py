"""Plone's other upgrade doors, and other writers, while a run holds the lock.

- :mod:`.addons`: plone.restapi's ``POST @addons/<id>/upgrade`` runs through
  this package's engine (lock, history, all or nothing, real error status);
- :mod:`.forms`: Plone's ``@@plone-upgrade`` and the add-ons control panel's
  ``@@upgrade_products`` lead to the upgrade page
  (:mod:`collective.upgradeapi.browser.page`) and run through the engine;
- :mod:`.classic`: the classic upgrade forms (``@@plone-upgrade``, the add-ons
  control panel's upgrade button, portal_setup's upgrade form and
  ``upgradeProfile``) refuse with 409 while the lock is held;
- :mod:`.hold`: the write hold: other requests that would write get 503
  while a real run holds writes (its whole run, or a unit it runs again
  after a write conflict).

What they answer is in :mod:`.refusals`.
"""
