"""Services: the functions routes and CLI commands call. They take a Session and plain values,
raise ArbiterError subclasses, and write audit entries in the caller's transaction."""
