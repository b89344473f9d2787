"""Progress of ``run`` on stderr: a bar on a terminal, plain lines otherwise.

:class:`Lines` prints one line per step as it starts (``  [3/12] Title
(profile)``), for CI logs and pipes. :class:`Bar` redraws one line in place
on a terminal::

    [#########...........]  45%  9/20  Title (profile)

Both take the status documents of ``GET @upgrade/status`` (or, in-process,
the same shape built from the run's events; see ``collective.upgradeapi.cli.site``).
"""

from plone_upgrade import output

import shutil
import threading


WIDTH = 20


def is_terminal(stream):
    """Whether ``stream`` is a terminal (not closed, not a pipe)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def fraction(status):
    """How far the run is, from 0 to 1, or ``None`` when unknown."""
    done, total = status.get("steps_done"), status.get("steps_total")
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        return max(0.0, min(1.0, done / total))
    percent = status.get("progress")
    if isinstance(percent, (int, float)):
        return max(0.0, min(1.0, percent / 100))
    return None


def bar_line(status, width=WIDTH):
    """The text of the bar for one status document (no ``\\r``)."""
    part = fraction(status)
    filled = round(width * (part or 0.0))
    percent = "  ?%" if part is None else f"{round(100 * part):3d}%"
    line = f"[{'#' * filled}{'.' * (width - filled)}] {percent}"
    done, total = status.get("steps_done"), status.get("steps_total")
    if isinstance(total, int):
        line += f"  {done if isinstance(done, int) else '?'}/{total}"
    state = status.get("state")
    name = output.step_name(status)
    if state == "committing":
        name = "committing"
    elif state not in (None, "running") and not name:
        name = str(state)
    if name:
        line += f"  {name}"
    if status.get("stale"):
        line += " (no sign of life from the server)"
    return line


class Lines:
    """One line per step as it starts, on ``note`` (stderr)."""

    def __init__(self, note):
        self.note = note

    def __call__(self, status):
        if status.get("current_step") and status.get("state") in (None, "running"):
            self.note(f"  {output.progress(status)}")

    def finish(self, *ignored):
        """Nothing to draw or close: every line is complete."""

    close = finish


class Bar:
    """A bar redrawn in place on the terminal ``stream``.

    Thread-safe: over HTTP the status is polled from a thread of its own.
    """

    def __init__(self, stream, columns=None):
        self.stream = stream
        self.columns = columns
        self.drawn = False
        self.last = ""
        self.lock = threading.Lock()

    def _columns(self):
        if self.columns:
            return self.columns
        return shutil.get_terminal_size((80, 24)).columns

    def draw(self, line):
        with self.lock:
            line = line[: max(10, self._columns() - 1)]
            padding = " " * max(0, len(self.last) - len(line))
            self.stream.write(f"\r{line}{padding}")
            self.stream.flush()
            self.last = line
            self.drawn = True

    def __call__(self, status):
        self.draw(bar_line(status))

    def finish(self, done, total, label="done"):
        """Draw the final state (``done`` of ``total`` steps) and end the line."""
        if not self.drawn:
            return
        self.draw(bar_line({"steps_done": done, "steps_total": total, "state": label}))
        self.close()

    def close(self):
        """End the bar's line (when one was drawn), leaving it as it is."""
        with self.lock:
            if self.drawn:
                self.stream.write("\n")
                self.stream.flush()
                self.drawn = False
