# Mizumori station firmware. The application package; boot.py and main.py sit beside it.
VERSION = "0.1.0"
