"""The platform seam: the Linux facilities the sidecar uses (sd_notify, malloc tuning; see
docs/architecture.md, "Porting to Windows").

Must not touch: policy; each module wraps one facility.
"""
