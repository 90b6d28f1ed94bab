// A citation link carries #chunk-<id> and the browser scrolls there itself; a link
// without the fragment still lands on the highlight. (A file, not inline: the CSP
// allows no inline script.)
(function () {
  "use strict";
  const cited = document.currentScript && document.currentScript.dataset.citedChunk;
  if (cited && !location.hash) {
    const target = document.getElementById(cited);
    if (target) target.scrollIntoView({ block: "start" });
  }
})();
