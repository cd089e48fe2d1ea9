"""The inventory service: products, their prices and their stock."""
