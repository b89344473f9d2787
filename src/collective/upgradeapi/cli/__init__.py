"""The in-process door of ``plone-upgrade`` (``--zope-conf``): :mod:`.inprocess`
starts Zope and chooses the sites, :mod:`.site` is the door to one site."""
