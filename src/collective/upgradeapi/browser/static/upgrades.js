/* The upgrade page (@@upgrade-controlpanel) with JavaScript: the progress of
 * the run that holds the lock, read from GET @upgrade/status without
 * reloading, and Cancel through DELETE @upgrade/run. Without JavaScript the
 * page's forms do the same. Every text shown is in the page (translated);
 * this script only fills in numbers, names and titles. */
(function () {
  "use strict";
  var page = document.getElementById("upgrade-page");
  if (!page) {
    return;
  }
  var box = document.getElementById("upgrade-progress");
  var ACTIVE = ["preparing", "running", "committing"];
  var watching = page.dataset.active === "true";
  var eager = false;

  function fill(selector, text) {
    box.querySelectorAll(selector).forEach(function (node) {
      node.textContent = text;
    });
  }

  function show(data) {
    var kind = box.querySelector(".js-kind");
    kind.textContent = data.dry_run ? kind.dataset.dryRun : kind.dataset.upgrade;
    fill(".js-user", data.user || "");
    fill(".js-done", String(data.steps_done || 0));
    fill(".js-total", String(data.steps_total || 0));
    fill(".js-step", (data.current_step && data.current_step.title) || "");
    fill(".js-state", data.state);
    var bar = box.querySelector(".js-bar");
    bar.style.width = (data.progress || 0) + "%";
    box.querySelector(".progress").setAttribute("aria-valuenow", data.progress || 0);
    box.querySelectorAll(".js-stale").forEach(function (node) {
      node.hidden = !data.stale;
    });
    box.hidden = false;
  }

  function poll() {
    fetch(page.dataset.statusUrl, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json();
      })
      .then(function (data) {
        if (ACTIVE.indexOf(data.state) >= 0) {
          watching = true;
          show(data);
        } else if (watching && data.run_id) {
          // The run ended: its entry in the history says how.
          watching = false;
          window.location.assign(page.dataset.pageUrl + "?run=" + data.run_id);
          return;
        }
        window.setTimeout(poll, watching || eager ? 500 : 2000);
      })
      .catch(function () {
        window.setTimeout(poll, 2000);
      });
  }

  var cancel = document.getElementById("upgrade-cancel-form");
  cancel.addEventListener("submit", function (event) {
    event.preventDefault();
    fetch(page.dataset.cancelUrl, {
      method: "DELETE",
      headers: { Accept: "application/json", "X-CSRF-TOKEN": page.dataset.token },
      credentials: "same-origin",
    }).then(function (response) {
      if (response.ok) {
        box.querySelector(".js-cancel-requested").hidden = false;
      } else {
        cancel.submit(); // the page shows why it was refused
      }
    });
  });

  var form = document.getElementById("upgrade-form");
  if (form) {
    // The run goes on in this form's request, whose answer shows its
    // result: follow its progress meanwhile.
    form.addEventListener("submit", function () {
      eager = true;
    });
  }
  poll();
})();
