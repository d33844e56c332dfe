"""``rnnkit serve``: an HTTP JSON API over a trained run folder, with micro-batching (``pip install 'rnnkit[serve]'``).

- :mod:`rnnkit.serve.options`: the server's flags and limits (no web framework needed to import it)
- :mod:`rnnkit.serve.batching`: the bounded queue and the one model thread that run requests in batches
- :mod:`rnnkit.serve.guards`: size limits, UTF-8, and the error answers (every error a one-line ``detail``)
- :mod:`rnnkit.serve.schemas`: the request bodies
- :mod:`rnnkit.serve.lm`, :mod:`~rnnkit.serve.text_tasks`, :mod:`~rnnkit.serve.media`: each task's endpoints
- :mod:`rnnkit.serve.app`: the app over one run; :mod:`rnnkit.serve.server`: binding the port, running uvicorn

This package is not imported by ``import rnnkit``: fastapi and uvicorn are an optional extra.
"""
