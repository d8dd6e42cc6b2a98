// The OpenAPI UI: Swagger UI from its CDN, started from this file because the page allows no inline script.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  // Deep links would put a link inside each operation's toggle button, which screen readers cannot reach.
  deepLinking: false,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
