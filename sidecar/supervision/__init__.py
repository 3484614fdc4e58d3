"""Supervision policies and the timers that apply them: watchdog, health, score, recovery,
resources, scaling, reload.

Must not touch: sockets; they act through the pool's verbs.
"""
