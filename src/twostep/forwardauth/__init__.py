"""Forward-auth: reverse proxies (nginx auth_request, Traefik, Caddy) ask twostep who may pass."""
