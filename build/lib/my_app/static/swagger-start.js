// Starts Swagger UI from a file, not an inline script, so the page keeps its strict
// Content-Security-Policy. The spec URL and settings come from the container's data.
const container = document.getElementById("swagger-ui-container");
window.ui = window.SwaggerUIBundle({
  url: container.dataset.specUrl,
  dom_id: "#swagger-ui-container",
  ...JSON.parse(container.dataset.config || "{}"),
});
