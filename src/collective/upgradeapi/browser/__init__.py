"""The Classic UI upgrade page (``@@upgrade-controlpanel``): see
:mod:`.page` and docs/classic-ui.md."""
