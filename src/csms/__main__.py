"""``python -m csms``: the same as the ``csms`` command."""

from csms.cli import main

main()
