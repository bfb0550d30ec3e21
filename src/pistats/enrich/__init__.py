"""Enrichments: parse/validate, geo, device, bots and sessions, run by one chain."""
