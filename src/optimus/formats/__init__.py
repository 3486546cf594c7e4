"""Pure parsers of the edX formats: bytes or text in, Python values out, no I/O on warehouses."""
