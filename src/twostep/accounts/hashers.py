"""The password hasher: argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile)."""

from __future__ import annotations

import argon2
from django.contrib.auth.hashers import Argon2PasswordHasher

_PROFILE = argon2.profiles.RFC_9106_LOW_MEMORY


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Django's argon2 hasher with t=3, m=64 MiB, p=4 instead of Django's own choice.

    The algorithm name stays ``argon2``, so existing hashes verify and are
    rehashed with these parameters at the next sign-in.
    """

    time_cost = _PROFILE.time_cost
    memory_cost = _PROFILE.memory_cost
    parallelism = _PROFILE.parallelism
