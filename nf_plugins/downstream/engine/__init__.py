"""mmengine runner pieces: hooks, safe checkpoint I/O, and the runner set-up of tools/train.py and
tools/test.py by role (``config``, ``cpu_config``, ``sync_bn``, ``checkpoint_fit``, ``runner``, ``cli_args``,
``registry_hints``)."""
