"""latent-explorer from Python: look inside a VAE you just trained, from the notebook you trained
it in (docs/python.md).

    from latent_explorer import serve
    explorer = serve(models=[vae], data={"faces": "~/pictures/faces"})
    explorer.url        # http://127.0.0.1:PORT/
    explorer.stop()
"""

from app.embedded import Explorer, ServeError, serve

__all__ = ["Explorer", "ServeError", "serve"]
