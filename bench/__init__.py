"""``make bench``: twostep's performance targets measured against the real server (see docs/performance.md)."""
