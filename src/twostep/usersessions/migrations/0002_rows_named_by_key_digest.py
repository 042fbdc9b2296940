"""Session rows are named by a digest of their key from now on (``backend.stored_key``).

Existing rows are renamed in place, so nobody is signed out by the upgrade.
The digest is written out here rather than imported: a migration must keep
doing what it did when it was written.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from django.db import migrations


def _digest(session_key: str) -> str:
    return base64.b32encode(hashlib.sha256(session_key.encode()).digest()[:20]).decode("ascii").lower()


def rename_rows(apps: Any, schema_editor: Any) -> None:
    UserSession = apps.get_model("usersessions", "UserSession")  # noqa: N806 - a model class
    for key in list(UserSession.objects.values_list("session_key", flat=True).iterator()):
        UserSession.objects.filter(session_key=key).update(session_key=_digest(key))


class Migration(migrations.Migration):
    dependencies = [("usersessions", "0001_initial")]

    # Not reversible: a digest cannot be turned back into the key it came from.
    operations = [migrations.RunPython(rename_rows, migrations.RunPython.noop)]
