"""``POST @addons/<id>/upgrade`` through this package's engine.

plone.restapi's service calls ``portal_setup.upgradeProfile``: no lock, no
history, no dry run, and 204 even when a step failed. This service takes its
place (same registration, an override) and leaves ``install``,
``uninstall`` and ``import`` to plone.restapi's code; ``upgrade`` runs the
add-on's upgrade profile (plone.restapi's choice: the add-on's ``default``
profile, else its first one) with :func:`collective.upgradeapi.api.upgrade`:

- success: plone.restapi's answer (204, or 200 with the add-ons with
  ``Prefer: return=representation``), which Volto's add-ons control panel
  reads; the run is in ``GET @upgrade/history``;
- a step failed: 500 with this package's error body (``failed_step``,
  ``steps``, ``report``); nothing was committed;
- another run holds the lock: 409; the profile is not installed: 400; no
  add-on of that id: 404.
"""

from collective.upgradeapi import api
from collective.upgradeapi.errors import shown
from collective.upgradeapi.errors import UnknownResource
from collective.upgradeapi.services import csrf
from collective.upgradeapi.services.base import answer_run
from collective.upgradeapi.services.base import AnswersRefusals
from plone.restapi.services.addons.addons import Addons
from plone.restapi.services.addons.post import AddonsPost as RestapiAddonsPost


class EngineAddons(Addons):
    """plone.restapi's add-on helper, whose upgrade runs through the engine."""

    def upgrade_product(self, product_id):
        """Run the pending steps of the add-on's upgrade profile.

        :returns: ``True``; failures are raised (see the module).
        """
        profile = self.get_install_profile(product_id, allow_hidden=True)
        if profile is None:
            raise UnknownResource(
                f"There is no add-on {shown([product_id])[0]!r} with a "
                "GenericSetup profile. GET @addons lists the add-ons."
            )
        selection = api.Selection(profiles=(profile["id"],))
        answer_run(
            self.request, self.context, lambda: api.upgrade(self.context, selection)
        )
        return True


class AddonsPost(AnswersRefusals, RestapiAddonsPost):
    """``POST /plone/@addons/<id>/<action>``: plone.restapi's service, whose
    ``upgrade`` goes through the engine.

    Refusals (4xx) are answered as JSON here and stay out of the error log;
    a failed step (500) goes on to Zope's failure path.
    """

    def __init__(self, context, request):
        super().__init__(context, request)
        self.addons = EngineAddons(context, request)

    def reply(self):
        if self.params[1:2] == ["upgrade"]:
            csrf.check(self.request)
        return super().reply()
