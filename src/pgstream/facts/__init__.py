"""Facts: versions, the one version table, LSNs, identifiers and passwords. Pure, no I/O."""
