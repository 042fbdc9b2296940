"""A stored SMTP password is kept with the server it is for (``mail.config``).

A password stored before carries no server: it is bound to the server the
settings name at the upgrade, which is where it was being sent, so outgoing
mail goes on working.  From then on it is only sent there.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import migrations

KEY = "email.password"


def bind_to_current_server(apps: Any, schema_editor: Any) -> None:
    from twostep.core.crypto import DecryptionError, KeyFileError
    from twostep.core.keyring import secret_box

    Setting = apps.get_model("core", "Setting")  # noqa: N806 - a model class
    row = Setting.objects.filter(key=KEY).first()
    if row is None or not isinstance(row.value, str):
        return
    try:
        box = secret_box()
        password = box.decrypt(row.value)
    except (DecryptionError, KeyFileError):
        return  # unreadable either way: the console asks for it again
    try:
        if isinstance(json.loads(password), dict):
            return  # already bound
    except ValueError:
        pass
    stored = dict(Setting.objects.filter(key__in=["email.host", "email.port", "email.security"]).values_list("key", "value"))
    file = settings.CONFIG.email
    host = stored.get("email.host", file.host)
    port = stored.get("email.port", file.port)
    security = stored.get("email.security", file.security)
    server = f"{host}:{port} ({security})"  # mail.config.server_of, as it was written then
    row.value = box.encrypt(json.dumps({"server": server, "password": password}))
    row.save(update_fields=["value"])


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [migrations.RunPython(bind_to_current_server, migrations.RunPython.noop)]
