"""The HTTP front: its server, handler, the dashboard's assets and the operator's sessions and
actions (routing each to sidecar/operator/).

Must not touch: the pool from an HTTP thread (it asks the loop).
"""
