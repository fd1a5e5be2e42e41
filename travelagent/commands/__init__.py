"""Commands that drive the clients from the top of the house: ``chat`` and ``probe``."""
