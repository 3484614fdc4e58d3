"""What runs inside a worker process: the serve loop, isolation between calls, test hooks.

Must not touch: the sidecar's own state (imports only the channel and the codec from outside).
"""
