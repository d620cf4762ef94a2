// The dashboard's own script (statekeeper): draws the Mermaid diagrams of a page
// (<pre class="mermaid">) when it loads and again whenever htmx swaps new ones in.
(function () {
  "use strict";
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  window.mermaid.initialize({
    startOnLoad: false,
    securityLevel: "strict",
    theme: dark ? "dark" : "default",
  });

  function draw(root) {
    var found = root.querySelectorAll("pre.mermaid:not([data-processed])");
    if (found.length) {
      window.mermaid.run({ nodes: found }).catch(function (error) {
        // A diagram that cannot be drawn stays as its text.
        console.warn("diagram not drawn:", error);
      });
    }
  }

  draw(document);
  // A live part refused because the session ended: load the page again (which sends
  // the browser to the sign-in page) rather than stop updating without a word.
  document.body.addEventListener("htmx:responseError", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 401) {
      window.location.reload();
    }
  });
  document.body.addEventListener("htmx:afterSettle", function (event) {
    draw(event.target);
  });
})();
