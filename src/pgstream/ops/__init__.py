"""Operations: the plan engine and every operation (setup, clone, follow, switchover, failover,
rejoin, slots, sync, status, sandbox), as functions over a cluster view.
"""
