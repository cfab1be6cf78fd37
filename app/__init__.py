"""Persona: configuration and the Faust app (no business logic here)."""
