"""Recovery codes: ten single-use codes that stand in for a lost second factor."""
