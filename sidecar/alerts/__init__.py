"""Alerts: the policy (conditions, de-duplication, grouping), the manager that hears events, the
delivery channels.

Must not touch: the pool.
"""
