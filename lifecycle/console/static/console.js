// lifecycle console: a little JS, served from the package (no CDN). Pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // A state on the diagram opens the search for the aggregates in that state.
  const kind = document.querySelector("#search select[name=kind]");
  document.querySelectorAll("svg.machine .state").forEach((node) => {
    node.addEventListener("click", () => {
      const base = document.querySelector("a.brand").getAttribute("href").replace(/\/$/, "");
      const title = document.querySelector("h1").firstChild.textContent.trim();
      const url = `${base}/search?kind=${encodeURIComponent(title)}&state=${encodeURIComponent(node.dataset.state)}`;
      window.location.assign(url);
    });
  });
  // "/" focuses the search's id box, as in most consoles.
  const id = document.getElementById("search-id");
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && id && document.activeElement.tagName !== "INPUT"
        && document.activeElement.tagName !== "TEXTAREA") {
      event.preventDefault();
      id.focus();
    }
  });
  if (kind) kind.addEventListener("change", () => {
    const state = document.getElementById("search-state");
    if (state) state.value = "";
  });
});
