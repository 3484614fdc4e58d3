"""Worker processes seen from the sidecar: spawning (forked from the warm template or exec'd),
placement, confinement, their output and stack dumps, their exits.

Must not touch: the pool's membership or calls.
"""
