"""The reference shop: microservices built only on bicameral's public API."""
