"""Refreshes from a TUF repository on disk with the reference client (python-tuf's
ngclient) and downloads the named targets: `python ngclient_refresh.py REPO WORK TARGET...`.

REPO holds metadata/ (1.root.json is the trusted root) and targets/. Prints, as JSON, the
sha256 of each downloaded target. Exits non-zero when ngclient refuses anything.
"""
import hashlib
import json
import os
import sys
from urllib.parse import unquote, urlparse

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface, Updater


class DiskFetcher(FetcherInterface):
    """Serves file:// URLs, with a 404 for a missing file as a web server would."""

    def _fetch(self, url):
        path = unquote(urlparse(url).path)
        if not os.path.isfile(path):
            raise DownloadHTTPError(f"{path} not found", 404)
        with open(path, "rb") as f:
            yield f.read()


def main(repo, work, targets):
    meta = os.path.join(work, "metadata")
    down = os.path.join(work, "downloads")
    os.makedirs(meta)
    os.makedirs(down)
    with open(os.path.join(repo, "metadata", "1.root.json"), "rb") as f:
        root = f.read()
    updater = Updater(
        meta,
        "file://" + os.path.join(repo, "metadata") + "/",
        down,
        "file://" + os.path.join(repo, "targets") + "/",
        fetcher=DiskFetcher(),
        bootstrap=root,
    )
    updater.refresh()
    out = {}
    for name in targets:
        info = updater.get_targetinfo(name)
        if info is None:
            sys.exit(f"ngclient finds no target {name}")
        path = updater.download_target(info, os.path.join(down, hashlib.sha256(name.encode()).hexdigest()))
        with open(path, "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
