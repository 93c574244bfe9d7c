"""Customers: accounts, the cars they own and the id tokens stations see."""
