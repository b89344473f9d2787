"""``@@upgrade-controlpanel``: the Classic UI upgrade page of a site.

A thin door on :mod:`collective.upgradeapi.api`: what the page shows is the
engine's plan, the run status and the history; what its forms do is one call
of the API each, with the lock, the tracking and the history of every run.

- ``GET``: the pending profiles and steps, the run that holds the lock (with
  its progress), the history; ``?run=<id>``: one run in full. A GET changes
  nothing.
- ``POST`` (a form of the page, with plone.protect's authenticator): one
  button, ``form.buttons.<action>`` (:data:`ACTIONS`). A run's result is
  shown by a redirect (303) to its entry in the history (``?run=<id>``); a
  refusal (bad input, the lock held, a missing permission or token) is shown
  on the page, with its status, and nothing was done.
"""

from AccessControl import getSecurityManager
from collective.upgradeapi import api
from collective.upgradeapi import documents
from collective.upgradeapi import errors
from collective.upgradeapi.engine.runner import COMMIT_MODES
from collective.upgradeapi.engine.txn import run_for_request
from collective.upgradeapi.errors import BadInput
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.errors import UpgradeError
from collective.upgradeapi.services import csrf
from collective.upgradeapi.services.base import service_url
from collective.upgradeapi.tracking.store import iso
from plone.base.utils import safe_text
from Products.Five.browser import BrowserView
from Products.Five.browser.pagetemplatefile import ViewPageTemplateFile
from Products.statusmessages.interfaces import IStatusMessage
from zope.i18nmessageid import MessageFactory


_ = MessageFactory("collective.upgradeapi")

PAGE = "@@upgrade-controlpanel"
#: The buttons of the page's forms, in the order they are looked for.
ACTIONS = ("dry_run", "upgrade", "mark_done", "stamp", "cancel", "break_lock")
#: The states of :func:`.api.status` while a run holds the lock.
ACTIVE = ("preparing", "running", "committing")
#: Runs the page lists; older ones are in ``GET @upgrade/history``.
HISTORY_SHOWN = 50
#: The hints of an error (:attr:`.errors.UpgradeError.hints`), in this page's terms.
HOW = {
    errors.FOLLOW: _("This page shows the run's progress."),
    errors.CANCEL: _("A Manager can cancel it here: Cancel the run."),
    errors.BREAK: _(
        "A Manager can break the lock here: Break the lock. Its run is "
        "recorded as abandoned."
    ),
    errors.LIST: _("This page lists the pending steps."),
}
#: The words of the engine's results, statuses and modes, translated.
WORDS = {
    "success": _("success"),
    "failed": _("failed"),
    "error": _("error"),
    "running": _("running"),
    "cancelled": _("cancelled"),
    "abandoned": _("abandoned"),
    "done": _("done"),
    "marked_done": _("marked done"),
    "not_run": _("not run"),
    "dry_run": _("Dry run"),
    "upgrade": _("Upgrade"),
    "commit_run": _("the whole run (all or nothing)"),
    "commit_profile": _("one profile"),
    "commit_step": _("one step"),
}


def page_url(site, run_id=None):
    url = f"{site.absolute_url()}/{PAGE}"
    return url if run_id is None else f"{url}?run={run_id}"


def posted(request):
    return request.get("REQUEST_METHOD", "GET").upper() == "POST"


def show_run(view, site, call):
    """Run ``call()``, a run started from a form (:func:`.api.upgrade` or
    :func:`.api.stamp`), and answer with a redirect (303) to its entry."""
    result = run_for_request(view.request, call)
    view.request.response.redirect(page_url(site, result.run_id), status=303)
    return ""


class UpgradePage(BrowserView):
    """The upgrade page; see the module."""

    index = ViewPageTemplateFile("templates/upgrades.pt")
    error = None
    #: the run asked for with ``?run=<id>``
    entry = None

    def __call__(self):
        try:
            if posted(self.request):
                return self.submit()
            self.entry = self.run_entry()
        except UpgradeError as error:
            self.error = error
            self.request.response.setStatus(error.status)
        return self.index()

    # -- what the page shows ---------------------------------------------

    def plans(self):
        return [plan.as_dict() for plan in api.pending(self.context)]

    def status(self):
        return api.status(self.context)

    def lock(self):
        return api.lock_info(self.context)

    def active(self):
        return self.status()["state"] in ACTIVE

    def runs(self):
        return api.runs(self.context)[:HISTORY_SHOWN]

    def run_entry(self):
        """The run asked for with ``?run=<id>``, or ``None``.

        :raises .errors.UnknownResource: there is no such run (404).
        """
        raw = safe_text(str(self.request.form.get("run") or ""))
        if not raw:
            return None
        data = documents.find_run(self.context, raw)
        if data is None:
            raise UnknownResource(f"There is no upgrade run {raw[:20]!r}.")
        return data

    def touched(self, entry):
        """The profiles of a run whose steps it ran or whose version moved."""
        ran = {step["profile"] for step in entry["steps"]}
        return [
            profile
            for profile in entry["profiles"]
            if profile["id"] in ran
            or profile["versions"]["after"] not in (None, profile["versions"]["before"])
        ]

    def hints(self):
        """What to do after :attr:`error`, in this page's terms."""
        return [HOW[hint] for hint in getattr(self.error, "hints", ()) if hint in HOW]

    def word(self, value):
        return WORDS.get(value, value)

    def when(self, seconds):
        return iso(seconds) if seconds is not None else ""

    def may_mark_done(self):
        return bool(getSecurityManager().checkPermission(api.MARK_DONE, self.context))

    def service_url(self):
        return service_url(self.context)

    def page_url(self):
        return page_url(self.context)

    # -- what the forms do -----------------------------------------------

    def submit(self):
        """Do what the pressed button asks; see the module."""
        # A POST another web site could have sent is refused (403).
        csrf.check(self.request)
        form = self.request.form
        action = next((a for a in ACTIONS if f"form.buttons.{a}" in form), None)
        if action is None:
            raise BadInput(_("No button was pressed: nothing was done."))
        return getattr(self, f"do_{action}")()

    def selection(self):
        """The :class:`.api.Selection` the run form asks for: the steps
        ticked; else the profiles ticked (every listed one: everything
        pending)."""
        form = self.request.form
        steps = tuple(dict.fromkeys(form.get("steps") or ()))
        profiles = tuple(dict.fromkeys(form.get("profiles") or ()))
        if steps:
            return api.Selection(steps=steps)
        if not profiles:
            raise BadInput(_("Choose at least one profile or step."))
        listed = {p["id"] for p in self.plans() if p["steps"] and not p["downgraded"]}
        if set(profiles) == listed:
            return api.Selection(profiles="all")
        return api.Selection(profiles=profiles)

    def commit_mode(self):
        commit = self.request.form.get("commit") or "run"
        if commit not in COMMIT_MODES:
            raise BadInput(_("Unknown commit mode: nothing was done."))
        return commit

    def confirmed(self):
        """Recording work as done needs its permission (403), then the
        confirmation ticked (400)."""
        api.check_may_mark_done(self.context)
        if not self.request.form.get("confirm"):
            raise BadInput(
                _("Tick the confirmation to record steps as done without running them.")
            )

    def start(self, **options):
        """Run what the run form chose, with :func:`.api.upgrade`'s ``options``."""
        selection = self.selection()
        options["commit"] = self.commit_mode()
        return show_run(
            self, self.context, lambda: api.upgrade(self.context, selection, **options)
        )

    def do_dry_run(self):
        return self.start(dry_run=True)

    def do_upgrade(self):
        return self.start()

    def do_mark_done(self):
        self.confirmed()
        return self.start(mark_done=True)

    def do_stamp(self):
        self.confirmed()
        profile = self.request.form.get("profile")
        if not profile or not isinstance(profile, str):
            raise BadInput(_("Choose the profile to record at its code's version."))
        return show_run(self, self.context, lambda: api.stamp(self.context, [profile]))

    def do_cancel(self):
        api.cancel(self.context, api.current_user()[0])
        return self.back(_("Cancel requested: the run stops at its next step."))

    def do_break_lock(self):
        api.break_lock(self.context, api.current_user()[0])
        return self.back(_("The lock was broken: its run is recorded as abandoned."))

    def back(self, message):
        IStatusMessage(self.request).add(message, type="info")
        self.request.response.redirect(page_url(self.context), status=303)
        return ""
