"""The commands (``protperf-<name>`` console scripts, ``scripts/<name>.py``): thin layers over
the library, configured through :mod:`protperf.cli`."""
