from twostep.accounts.hashers import Argon2idPasswordHasher


class FastArgon2PasswordHasher(Argon2idPasswordHasher):
    """argon2id with test-only parameters; never used outside the test suite."""

    time_cost = 1
    memory_cost = 1024
    parallelism = 1
