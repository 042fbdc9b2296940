"""Message templates: subject, plain text and HTML, which admins may override.

Each message ``NAME`` is three templates, ``mail/NAME/subject.txt``,
``mail/NAME/body.txt`` and ``mail/NAME/body.html`` (the HTML ones extend
``mail/base.html``).  A file of the same path under ``<data_dir>/templates/``
wins over the shipped one and is read at every message, so an edit applies
without a restart.  Values listed as private (the code) are left out of the
subject's context: they can never reach a subject line, whatever a template says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template import Context, Engine

PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"
_NAME = re.compile(r"[a-z0-9_]{1,64}")
#: Context keys never rendered into a subject.
PRIVATE_KEYS = ("code",)


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def override_dir() -> Path:
    """Where admins put their own versions: ``<data_dir>/templates`` (``mail/NAME/...`` inside)."""
    return Path(settings.DATA_DIR) / "templates"


@lru_cache(maxsize=8)
def _engine(dirs: tuple[str, ...]) -> Engine:
    # The plain filesystem loader (not the cached one) so that edits apply at once.
    # Escaping is decided per render: off for subject and text, on for HTML.
    return Engine(dirs=list(dirs), loaders=["django.template.loaders.filesystem.Loader"], debug=False)


def render(name: str, context: Mapping[str, Any], *, private: Iterable[str] = PRIVATE_KEYS) -> RenderedMail:
    """Render message ``name`` with ``context``.

    Raises:
        django.template.TemplateDoesNotExist: no such message.
        django.template.TemplateSyntaxError: an (overridden) template is broken.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a message name")
    engine = _engine((str(override_dir()), str(PACKAGE_TEMPLATES)))
    hidden = set(private)
    subject_context = {key: value for key, value in context.items() if key not in hidden}
    subject = engine.get_template(f"mail/{name}/subject.txt").render(Context(subject_context, autoescape=False))
    text = engine.get_template(f"mail/{name}/body.txt").render(Context(dict(context), autoescape=False))
    html = engine.get_template(f"mail/{name}/body.html").render(Context(dict(context), autoescape=True))
    # One line: a template's stray newline must not end the header.
    return RenderedMail(subject=" ".join(subject.split()), text=text.strip() + "\n", html=html)
