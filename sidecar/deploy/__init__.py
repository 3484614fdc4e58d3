"""What an integrator drops into an Ignition gateway: the bundle, its checks and texts, the helper
jar, the gateway projects.

Must not touch: a running sidecar.
"""
