"""What runs inside a worker process: the serve loop, isolation between calls, the protocol's
messages (both ends import ``protocol``), test hooks.

Must not touch: the sidecar's own state (imports only the channel, the codec, the platform
seam and process placement from outside: an import-linter contract).
"""
