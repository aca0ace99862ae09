"""One settings object: paths and limits, each overridable by an environment variable
(`LATENT_EXPLORER_<NAME>`, e.g. `LATENT_EXPLORER_CHECKPOINTS_DIR=/srv/models`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# a CSP host source for frame-ancestors: a scheme, and a host (perhaps "*." before it) with
# perhaps a port or ":*"; or a bare scheme ("vscode-webview:"). Nothing that could end the header
# or start another directive (no space, ";" or ",")
FRAME_SOURCE = r"^[a-z][a-z0-9+.-]*:(//(\*\.)?[a-z0-9.-]+(:([0-9]{1,5}|\*))?)?$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LATENT_EXPLORER_")

    checkpoints_dir: Path = PROJECT_ROOT / "checkpoints"
    # the names (or addresses) in the Host header of a request the server answers; any other
    # gets 400: a web page whose name an attacker points at this machine (DNS rebinding) is
    # refused. "*.example.org" names its subdomains, "*" any host. `serve --host NAME` adds NAME;
    # `serve --host 0.0.0.0` without this set answers any (see app/server.py). As JSON in
    # LATENT_EXPLORER_ALLOWED_HOSTS, e.g. '["explorer.example.org"]'
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    # the origins whose pages may show the explorer in a frame (a notebook's output: `serve`
    # from Python allows the local ones, app/embedded.py); none by default: every response says
    # frame-ancestors 'none' and X-Frame-Options DENY. Each is a CSP source such as
    # "http://localhost:*" (as JSON in LATENT_EXPLORER_FRAME_ANCESTORS)
    frame_ancestors: tuple[Annotated[str, StringConstraints(pattern=FRAME_SOURCE)], ...] = ()
    # models from a person's own code, `package.module:factory` each (`serve --plugin`; as JSON
    # in LATENT_EXPLORER_PLUGINS): never read from a checkpoint folder
    plugins: tuple[str, ...] = ()
    # Fashion-MNIST's four idx files (Debian's dataset-fashion-mnist): the test images the pages
    # of a Fashion-MNIST model pick from, and that `evaluate` judges it on
    fashion_mnist_dir: Path = Path("/usr/share/datasets/fashion-mnist")
    # data sets any model can be viewed on (`data=NAME`), besides the built-in dsprites, shapes3d
    # and fashion-mnist: every sub-folder of this one is a set, named by its dataset.json or its
    # folder (a folder that cannot be opened is logged and skipped)
    datasets_dir: Path = PROJECT_ROOT / "datasets"
    # more sets, NAME → folder (`serve --data NAME=PATH`; as JSON in LATENT_EXPLORER_DATA, e.g.
    # '{"faces": "/srv/faces"}'): one that cannot be opened, or whose name is taken, stops the
    # server from starting
    data: dict[str, Path] = Field(default_factory=dict)
    static_dir: Path = PROJECT_ROOT / "static"
    templates_dir: Path = PROJECT_ROOT / "templates"

    # the model `/` opens on: the disentangled dSprites model shows best what a VAE learns; when
    # it is not served, the served model with the best MIG on its card
    default_model: str = "dsprites-beta-vae"
    # the dataset image a page without a z starts from, encoded (None: every factor at the middle
    # of its range)
    landing_image: int | None = None

    max_abs_latent: float = 10.0  # |z_i| beyond this is far outside N(0, 1): refused
    # a deterministic AE's code has no prior to be far outside of: the shipped AE's codes reach
    # ±18 on dSprites, so its limit only refuses the absurd
    max_abs_code: float = 100.0
    max_batch: int = 256  # latent vectors per batch decode, samples per request
    max_traverse_steps: int = 15  # columns of a traversal grid
    max_sweep_positions: int = 241  # slider positions in one sweep strip (±3 in steps of 0.025)
    max_interpolate_steps: int = 64  # frames of an interpolation strip
    max_upload_bytes: int = 10 * 1024 * 1024
    max_upload_pixels: int = 40_000_000  # width × height, refused from the header before decoding
    max_image_scale: int = 8  # nearest-neighbour enlargement of returned PNGs
    max_map_points: int = 20_000  # held-out images one latent map encodes and lays out (JSON)
    # images the server's background computation of disentanglement_lib's scores trains on (half
    # as many held out), for a model of ground-truth data whose card lacks them: the library's
    # 10,000 (its DCI's boosting ~6 min a model on 2 cores)
    reference_points: int = 10_000
    # points of a data set's map in the binary form (map.bin): all of dSprites is 737,280
    max_binary_map_points: int = 1_000_000
    # where t-SNE maps are kept between runs and shared by server processes (`make run`: .cache);
    # None: in memory only, computed again after a restart
    cache_dir: Path | None = None
    torch_threads: int = 1  # per worker process; see app/main.py for why one
