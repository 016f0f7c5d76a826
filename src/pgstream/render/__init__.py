"""Rendering, pure: configuration text, every SQL statement, every argv, synchronous_standby_names,
units.
"""
