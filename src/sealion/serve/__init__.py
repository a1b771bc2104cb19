"""OpenAI-compatible server over an in-process model with continuous batching.

    from sealion.serve import create_app, ServeConfig, ServerThread
    app = create_app("demo", config=ServeConfig(model_name="demo"))
    with ServerThread(app) as server:      # 127.0.0.1, a free port
        print(server.url)                  # point openai.OpenAI(base_url=server.url + "/v1") at it
"""

from .app import ServeConfig, create_app
from .runner import ServerThread, serve_forever
from .scheduler import Scheduler

__all__ = ["ServeConfig", "ServerThread", "Scheduler", "create_app", "serve_forever"]
