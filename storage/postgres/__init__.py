"""The PostgreSQL store by port, over one shared psycopg pool (`connection.PgConnection`).

connection.py      the pool, transactions, rows by name, the URL kept secret (redact)
migrate.py         numbered migrations (storage/migrations/postgres) under an advisory lock
records.py         CampaignRecords: campaigns, products and steps (fenced with FOR UPDATE)
leases.py          CampaignLeases: ownership on the database's clock, the cancel flag
ledger.py          SpendLedger: the audit ledger, quota checks under advisory locks
provider_cache.py  ProviderCache: provider documents kept across restarts
notices.py         cancel requests announced by NOTIFY and awaited by LISTEN
shared.py          the account's create schedule and the front ends' replay keys
schedule.py        that schedule on a connection of its own, for other processes (Ray)

Records become column values and rows records again with storage/rows.py, shared
with SQLite (it holds no queries).
"""
