"""Sign-in throttle counters of typed names are keyed by a hash from now on.

The earlier keys held the typed text itself (a password typed in the
username field, now and then); they are dropped: those counters start again.
"""

from django.db import migrations


def drop_plain_name_keys(apps, schema_editor):
    apps.get_model("accounts", "SignInThrottle").objects.filter(key__startswith="user:").delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_signinthrottle")]

    operations = [migrations.RunPython(drop_plain_name_keys, migrations.RunPython.noop)]
