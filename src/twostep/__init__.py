"""twostep: a self-hosted sign-in service with a second step."""

__version__ = "0.1.0"
