// Swagger UI on the gateway's own /openapi.json. A served file, not an inline script, so the
// page's Content-Security-Policy can forbid inline code; validatorUrl null keeps the page from
// sending the document to validator.swagger.io: nothing here calls another origin.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
