"""Shared by every test folder; its presence puts tests/ on sys.path for ``midi_helpers``."""
