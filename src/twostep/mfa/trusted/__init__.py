"""Trusted browsers: "Trust this browser" skips the second step for a while, server-side and revocable."""
