"""The in-process door of ``plone-upgrade`` (``--zope-conf``): :mod:`.inprocess`."""
