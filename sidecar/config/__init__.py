"""The configuration: the YAML file, its pydantic models, and each component's settings built from
them.

Owns: reading and validating config, defaults in default.yml. Must not touch: running anything it
configures.
"""
