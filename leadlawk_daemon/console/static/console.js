// LeadLawk console: live job progress from the daemon's server-sent events. No framework, no build
// step, and no HTML from the server is ever inserted: only textContent and attributes are set.
"use strict";
(function () {
  var FINISHED = { succeeded: true, failed: true, cancelled: true, partial: true };

  function rowsFor(jobId) {
    return Array.prototype.filter.call(document.querySelectorAll("[data-job]"), function (el) {
      return el.getAttribute("data-job") === jobId;
    });
  }

  function setText(root, selector, text) {
    var el = root.querySelector(selector);
    if (el && el.textContent !== text) { el.textContent = text; }
    return el;
  }

  var unseen = {};

  function announce(jobId) {
    // A job submitted elsewhere (the API, Redis, another tab): say so rather than rebuild the table.
    var notice = document.getElementById("new-jobs");
    if (!notice || unseen[jobId]) { return; }
    unseen[jobId] = true;
    var count = Object.keys(unseen).length;
    notice.querySelector("a").textContent = count + (count === 1 ? " new job" : " new jobs") + ": show";
    notice.hidden = false;
  }

  function apply(update) {
    if (!update || typeof update.job_id !== "string") { return; }
    var rows = rowsFor(update.job_id);
    if (!rows.length && update.event === "job.accepted") { announce(update.job_id); }
    rows.forEach(function (row) {
      var limit = parseInt(row.getAttribute("data-limit"), 10) || 1;
      var counters = update.counters || null;
      if (update.status) {
        var status = setText(row, '[data-field="status"]', update.status);
        if (status) { status.className = "status status-" + update.status; }
      }
      if (counters) {
        Object.keys(counters).forEach(function (name) {
          setText(row, '[data-counter="' + name + '"]', String(counters[name]));
        });
      }
      var written = counters && typeof counters.written === "number" ? counters.written : null;
      var bar = row.querySelector('[data-field="bar"]');
      if (bar) {
        if (update.status === "succeeded") { bar.value = bar.max; }
        else if (written !== null) { bar.value = Math.min(written, limit); }
      }
      if (written !== null) { setText(row, '[data-field="fraction"]', written + " / " + limit); }
      var waiting = update.waiting_on && update.waiting_on.length ? "waiting on " + update.waiting_on.join(", ") : "";
      setText(row, '[data-field="waiting"]', update.finished ? "" : waiting);
      var cancel = row.querySelector('[data-field="cancel"]');
      if (cancel) { cancel.hidden = !!FINISHED[update.status]; }
    });
  }

  function connect() {
    var state = document.getElementById("live-state");
    var following = state || document.querySelector("[data-job]");
    if (!following || typeof EventSource === "undefined") {
      if (state) { state.textContent = ""; }
      return;
    }
    var source = new EventSource("/console/events");
    source.addEventListener("open", function () {
      if (state) { state.textContent = "live"; state.setAttribute("data-state", "live"); }
    });
    source.addEventListener("error", function () {
      // EventSource reconnects by itself; say so meanwhile.
      if (state) { state.textContent = "reconnecting…"; state.setAttribute("data-state", "reconnecting"); }
    });
    source.addEventListener("job", function (message) {
      try { apply(JSON.parse(message.data)); } catch (e) { /* a malformed event changes nothing */ }
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", connect); }
  else { connect(); }
})();
