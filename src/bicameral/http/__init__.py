"""The HTTP face of a Node: command and query routes, problem details, health and metrics."""
