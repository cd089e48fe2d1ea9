"""The ``bicameral`` command line."""
