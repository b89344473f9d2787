"""collective.upgradeapi: a safe and complete @upgrade REST service for Plone."""
