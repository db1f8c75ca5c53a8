"""The domain. No Flask request objects in here; callers pass what a service needs."""
