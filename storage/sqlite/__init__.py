"""The SQLite store by port, over one shared connection (`connection.Connection`).

connection.py      the aiosqlite connection: open, close, write and read transactions
records.py         CampaignRecords: campaigns, products and steps
leases.py          CampaignLeases: who runs each unfinished campaign, the cancel flag
ledger.py          SpendLedger: the audit ledger that quotas count from
provider_cache.py  ProviderCache: provider documents kept across restarts
"""
