"""What every command shares: its exit codes, how it fails, where it writes.

A command works on a door to one site: :class:`plone_upgrade.http.Client`
over HTTP, or in-process ``collective.upgradeapi.cli.inprocess.SiteDoor``, which
answers the same documents."""

import click
import json


#: Exit codes shared by every command.
OK = 0
FAILED = 1
ERROR = 2
#: The service's refusals in words, by HTTP status.
KINDS = {400: "Bad request", 403: "Forbidden", 404: "Not found", 409: "Conflict"}


class Failure(Exception):
    """A command cannot go on (exit 2): a one-line ``message``, the JSON
    ``document`` of ``--json`` (by default ``{"type": error_type, "message"}``),
    and whether waiting may help (``retry``: the site is still starting)."""

    def __init__(self, message, document=None, retry=False, error_type="Error"):
        super().__init__(message)
        self.message = message
        self.retry = retry
        self.document = document or {"type": error_type, "message": message}


def refusal(status, body, http=True):
    """The :class:`Failure` for the service's own refusal: its error ``body``,
    its HTTP ``status`` (named in the message over ``http``) added."""
    message = " ".join(str(body.get("message", "")).split())
    kind = KINDS.get(status, body.get("type", "Error"))
    how = f" (HTTP {status})" if http else ""
    return Failure(f"{kind}{how}: {message}", document={**body, "status": status})


class Output:
    """Where a command writes: text on stdout, or with ``as_json`` only one
    JSON document there; progress and errors on stderr. ``sink`` takes the
    document instead, ``label`` goes before errors (both for ``--all-sites``)."""

    def __init__(self, as_json, sink=None, label=None):
        self.as_json, self.sink, self.label = as_json, sink, label

    def line(self, text=""):
        self.lines([text])

    def lines(self, lines):
        if not self.as_json:
            for text in lines:
                click.echo(text)

    def note(self, text):
        click.echo(text, err=True)

    def document(self, document):
        if self.sink is not None:
            self.sink(document)
        elif self.as_json:
            click.echo(json.dumps(document, indent=2, ensure_ascii=False))

    def guard(self, f, *args, **kwargs):
        """``f``'s exit code, or :meth:`fail`'s."""
        try:
            return f(*args, **kwargs)
        except Failure as failure:
            return self.fail(failure)

    def fail(self, failure):
        """Write ``failure``'s message and document; return :data:`ERROR`."""
        where = f"{self.label}: " if self.label else ""
        self.note(f"Error: {where}{failure.message}")
        self.document(failure.document)
        return ERROR
