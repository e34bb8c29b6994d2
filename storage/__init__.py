"""SQLite storage for campaigns (the only place SQL lives)."""
