"""mmengine runner pieces: hooks, safe checkpoint I/O, runner set-up."""
