"""Servers for development and tests only: a private Redis and a local SMTP sink."""
