"""A local pool of worker processes: admission, dispatch, membership, lifecycle, the call, the
events it publishes, its settings and snapshot.

Must not touch: process spawning details (sidecar/process/), policies (sidecar/supervision/).
"""
