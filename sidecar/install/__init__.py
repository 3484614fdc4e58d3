"""``py3sidecar install`` / ``uninstall`` / ``doctor`` on an Ignition host.

Must not touch: the host except through install/seam.py.
"""
