"""Dataclasses only: what a run found and decided. No pytest, paramiko or yaml."""
