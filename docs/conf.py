"""Sphinx configuration for collective.upgradeapi."""

project = "collective.upgradeapi"
author = "collective.upgradeapi contributors"
copyright = "2026, collective.upgradeapi contributors"

extensions = [
    "myst_parser",
    "sphinx.ext.intersphinx",
    "sphinxcontrib.httpdomain",
    "sphinxcontrib.httpexample",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
html_theme = "plone_sphinx_theme"
intersphinx_mapping = {}
