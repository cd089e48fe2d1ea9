"""Running services: settings, backends chosen by URL, process roles, the all-in-one node."""
