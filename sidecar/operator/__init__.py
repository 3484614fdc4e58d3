"""The operator's verbs behind the console: pool operations (restart a worker, recycle, resize,
breaker, quarantine clear) run on the loop thread, the code console through Service.dispatch,
packages per pool through the pool's own pip.

Must not touch: HTTP (sessions, CSRF: sidecar/http/).
"""
