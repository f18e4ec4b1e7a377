"""One serving process (start, signals, drain, reload), the --workers supervisor, the loop watchdog."""
