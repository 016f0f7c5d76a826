"""Effects: hosts (local, SSH), services (pg_ctl, pg_ctlcluster, systemd), programs, data
directories and ``pg_control``.
"""
