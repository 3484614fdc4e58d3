"""Which backend runs a call: the lean path of the common call, the strategies, the fallback
chain, the Dask pool, the registry of named pools, the quarantine, the gateway route's policy.

Must not touch: a worker's process.
"""
