"""The SQLite store by port, over one shared connection (`connection.Connection`).

connection.py      the aiosqlite connection: open, close, write and read transactions
records.py         CampaignRecords: campaigns, products and steps
leases.py          CampaignLeases: who runs each unfinished campaign, the cancel flag
ledger.py          SpendLedger: the audit ledger that quotas count from
provider_cache.py  ProviderCache: provider documents kept across restarts
shared.py          the account's create schedule and the front ends' replay keys
schedule.py        that schedule on a connection of its own, for other processes (Ray)
"""
