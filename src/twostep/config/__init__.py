"""Typed configuration: ``data/config.toml`` overridden by ``TWOSTEP_*`` variables."""

from twostep.config.loader import ConfigError, TwostepConfig, load_config

__all__ = ["ConfigError", "TwostepConfig", "load_config"]
