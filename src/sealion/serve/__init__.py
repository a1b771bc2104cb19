"""OpenAI-compatible server: HTTP only, over the engine core (`sealion.engine.core.EngineCore`).

    from sealion.serve import create_app, ServeConfig, ServerThread
    app = create_app("demo", config=ServeConfig(model_name="demo"))
    with ServerThread(app) as server:      # 127.0.0.1, a free port
        print(server.url)                  # point openai.OpenAI(base_url=server.url + "/v1") at it
"""

__all__ = ["ServeConfig", "ServerThread", "create_app", "serve_forever"]

from ..lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {"ServeConfig": "app", "create_app": "app", "ServerThread": "runner",
                                      "serve_forever": "runner"})
