"""The platform seam: every Linux facility the sidecar uses, one module each, so a port to
another system is new modules here, not a rewrite (docs/architecture.md, "Porting to Windows").

poller (epoll, pidfd), prctl (parent-death signal, subreaper, capabilities), limits (rlimits),
clone (the template's CLONE_PARENT fork), pipes (pipe size, unread bytes, high dups), procfs
(/proc: threads, children), sd_notify (systemd), memtune (glibc malloc). Each header says what
it offers, the Linux call and the Windows counterpart. Only this package imports ctypes, fcntl,
resource or termios (an import-linter contract).

Must not touch: policy (what to print, when to exit, what a count means stays with the caller);
the functions are the kernel's own where they can be, bound by name, never wrapped on the hot
path.
"""
