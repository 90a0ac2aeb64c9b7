"""Bookmark storage, overrides and reset."""
