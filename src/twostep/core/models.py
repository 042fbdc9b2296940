from __future__ import annotations

from django.db import models


class Setting(models.Model):
    """A runtime setting that admins change in the console; shared by every instance."""

    key = models.CharField(max_length=100, primary_key=True)
    value = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key
