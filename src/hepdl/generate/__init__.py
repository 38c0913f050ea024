"""Embedded datasets made offline and seeded: the LCD-style calorimeter simulation (more later)."""
