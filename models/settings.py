"""Temporary: moved to ``seasoned.settings`` (this module goes once every import is updated)."""

from seasoned.settings import apply_offline_defaults, default_model, seasoned_home

__all__ = ["apply_offline_defaults", "default_model", "seasoned_home"]
