"""Platform-neutral domain and orchestration; imports nothing outward."""
