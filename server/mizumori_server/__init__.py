"""The Mizumori fleet server."""
