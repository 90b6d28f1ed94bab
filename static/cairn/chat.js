// The chat's small behaviours: Enter sends (Shift+Enter adds a line), the view
// follows a streaming answer unless the reader scrolled up, Stop closes the stream.
(function () {
  "use strict";

  document.addEventListener("keydown", function (event) {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) || box.name !== "question") return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (box.value.trim()) box.form.requestSubmit();
    }
  });

  function nearBottom() {
    const doc = document.scrollingElement || document.documentElement;
    return doc.scrollHeight - doc.scrollTop - doc.clientHeight < 160;
  }
  let follow = true;
  window.addEventListener("scroll", function () { follow = nearBottom(); }, { passive: true });
  function keepInView() {
    if (follow) window.scrollTo({ top: document.body.scrollHeight });
  }
  document.body.addEventListener("htmx:sseMessage", keepInView);
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "messages") { follow = true; keepInView(); }
  });

  // The composer is busy while its request is in flight.
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.id === "composer") event.detail.elt.classList.add("busy");
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    const form = event.detail.elt;
    if (form.id !== "composer") return;
    form.classList.remove("busy");
    // Asked: empty the box for the next question (on an error the text stays).
    if (event.detail.successful && form.getAttribute("hx-target") === "#messages") {
      form.reset();
      const error = document.getElementById("composer-error");
      if (error) error.textContent = "";
    }
  });
})();
