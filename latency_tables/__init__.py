"""The shipped latency tables (CSV + JSON sidecar per measured setup), installed as package data.

Local calibrations of these tables never go here: see `hwnas.latency.local`.
"""
