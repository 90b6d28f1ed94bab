// The staff inbox's live list: rows from the server's SSE stream (tickets/sse.py).
// "ticket" carries a row's HTML: a new ticket goes on top, a changed one replaces its
// row in place; "gone" names a ticket that left this filtered list. When the filter
// form swaps the list (htmx), the stream of the new list replaces the old one.
(function () {
  "use strict";

  let source = null;

  function rowFrom(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    // A <tr> parsed outside a table loses its tags: parse it inside one.
    if (!(template.content.firstElementChild instanceof HTMLTableRowElement)) {
      const table = document.createElement("template");
      table.innerHTML = "<table><tbody>" + html.trim() + "</tbody></table>";
      return table.content.querySelector("tr");
    }
    return template.content.firstElementChild;
  }

  function announce(text) {
    const announcer = document.getElementById("inbox-announcer");
    if (announcer) announcer.textContent = text;
  }

  function emptyNote(rows) {
    const note = document.querySelector(".inbox-empty");
    if (note) note.hidden = rows.children.length > 0;
  }

  function connect() {
    if (source) { source.close(); source = null; }
    const rows = document.getElementById("ticket-rows");
    if (!rows || !rows.dataset.stream || !window.EventSource) return;
    source = new EventSource(rows.dataset.stream);
    source.addEventListener("ticket", function (event) {
      const row = rowFrom(event.data);
      if (!row || !row.id) return;
      const current = document.getElementById(row.id);
      if (current) {
        current.replaceWith(row);
      } else {
        rows.prepend(row);
        announce("New ticket: " + (row.querySelector(".ticket-subject a") || row).textContent.trim());
      }
      row.classList.add("fresh");
      if (window.htmx) window.htmx.process(row);
      emptyNote(rows);
    });
    source.addEventListener("gone", function (event) {
      const row = document.getElementById("ticket-" + event.data.trim());
      if (row) row.remove();
      emptyNote(rows);
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
  if (document.readyState !== "loading") connect();
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "inbox-list") connect();
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    if (!document.getElementById("ticket-rows") && source) { source.close(); source = null; }
  });
  window.addEventListener("pagehide", function () { if (source) source.close(); });
})();
