"""Django's SQLite backend with write transactions queued by a file lock (see ``base``)."""
