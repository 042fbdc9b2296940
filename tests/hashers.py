from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    """argon2id with test-only parameters; never used outside the test suite."""

    time_cost = 1
    memory_cost = 1024
    parallelism = 1
