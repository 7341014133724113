"""Writes TUF repositories with the Python reference implementation (python-tuf), for
timb-release's interoperability tests: `python make_repos.py OUT`.

Each repository is OUT/<name>/{metadata,targets}/ with consistent snapshots (N.root.json,
V.snapshot.json, V.targets.json, HASH.<target>), new keys every run, and OUT/manifest.json
says what a client must find in each. Expiry is fixed far in the future (2100) so that the
tests choose their reference time, but in "expired-timestamp" (2020).
"""
import hashlib
import json
import os
import sys
from datetime import datetime, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    MetaFile,
    Metadata,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

EXPIRES = datetime(2100, 1, 1, tzinfo=timezone.utc)
ROLES = ["root", "timestamp", "snapshot", "targets"]


def ed25519(keyid=None):
    return CryptoSigner.generate_ed25519(keyid=keyid)


def ecdsa(keyid=None):
    return CryptoSigner.generate_ecdsa(keyid=keyid)


def rsa(keyid=None):
    return CryptoSigner.generate_rsa(keyid=keyid)


def hashes(data):
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }


class Repo:
    def __init__(self, out, name, signers, thresholds=None):
        """signers: role -> list of signers (all of them sign)."""
        self.dir = os.path.join(out, name)
        self.meta_dir = os.path.join(self.dir, "metadata")
        self.targets_dir = os.path.join(self.dir, "targets")
        os.makedirs(self.meta_dir)
        os.makedirs(self.targets_dir)
        self.signers = signers
        self.root = Metadata(Root(expires=EXPIRES, consistent_snapshot=True))
        for role in ROLES:
            for s in signers[role]:
                self.root.signed.add_key(s.public_key, role)
            self.root.signed.roles[role].threshold = (thresholds or {}).get(role, 1)
        self.targets = Metadata(Targets(expires=EXPIRES))
        self.expected = {}

    def write(self, md, name):
        # The reference's own file format: indented, sorted, non-ASCII escaped.
        md.to_file(os.path.join(self.meta_dir, name), serializer=JSONSerializer(compact=False))

    def sign(self, md, role, signers=None):
        md.signatures.clear()
        for s in signers if signers is not None else self.signers[role]:
            md.sign(s, append=True)

    def publish_root(self, extra_signers=()):
        self.sign(self.root, "root", list(extra_signers) + self.signers["root"])
        self.write(self.root, f"{self.root.signed.version}.root.json")

    def rotate_root(self, new_root_signers, root_threshold=1, **new_role_signers):
        """Next root version: new keys for root (and any role given), signed by old and new."""
        old_root_signers = self.signers["root"]
        r = self.root.signed
        r.version += 1
        changed = {"root": new_root_signers, **new_role_signers}
        for role, new in changed.items():
            for keyid in list(r.roles[role].keyids):
                r.revoke_key(keyid, role)
            for s in new:
                r.add_key(s.public_key, role)
            self.signers[role] = new
        r.roles["root"].threshold = root_threshold
        self.publish_root(extra_signers=old_root_signers)

    def add_target(self, name, data, custom):
        tf = TargetFile.from_data(name, data, ["sha256", "sha512"])
        tf.unrecognized_fields["custom"] = custom
        self.targets.signed.targets[name] = tf
        dirname, base = os.path.split(name)
        os.makedirs(os.path.join(self.targets_dir, dirname), exist_ok=True)
        for digest in tf.hashes.values():
            with open(os.path.join(self.targets_dir, dirname, f"{digest}.{base}"), "wb") as f:
                f.write(data)
        self.expected[name] = {"length": len(data), "hashes": hashes(data), "custom": custom}

    def publish(self, timestamp_expires=EXPIRES):
        self.sign(self.targets, "targets")
        tbytes = self.targets.to_bytes(JSONSerializer(compact=False))
        self.write(self.targets, f"{self.targets.signed.version}.targets.json")
        snap = Metadata(Snapshot(expires=EXPIRES))
        snap.signed.meta["targets.json"] = MetaFile(
            version=self.targets.signed.version, length=len(tbytes), hashes=hashes(tbytes)
        )
        self.sign(snap, "snapshot")
        sbytes = snap.to_bytes(JSONSerializer(compact=False))
        self.write(snap, f"{snap.signed.version}.snapshot.json")
        ts = Metadata(Timestamp(expires=timestamp_expires))
        ts.signed.snapshot_meta = MetaFile(
            version=snap.signed.version, length=len(sbytes), hashes=hashes(sbytes)
        )
        self.sign(ts, "timestamp")
        self.write(ts, "timestamp.json")

    def manifest(self):
        return {
            "root_version": self.root.signed.version,
            "targets": self.expected,
        }


def timb(version, target="linux-x86_64", channel="stable"):
    return {"timb": {"version": version, "target": target, "channel": channel}}


def bundles(repo):
    repo.add_target(
        "timb-0.2.0-linux-x86_64.tar.xz", b"the 0.2.0 bundle\n" * 1000, timb("0.2.0")
    )
    repo.add_target(
        "windows/timb-0.2.0-windows-x86_64.zip",
        b"PK\x03\x04 another platform",
        timb("0.2.0", target="windows-x86_64"),
    )
    # Non-ASCII keys and values in signed metadata: canonical JSON must match byte for byte.
    repo.add_target(
        "notes-\u00e9.txt",
        "r\u00e9sum\u00e9 e\u0301 \u65e5\u672c\n".encode(),
        {**timb("0.2.0"), "caf\u00e9": {"e\u0301": "\u00e9", "\u00e9": ["\U0001f600", "\\\""]}},
    )


def main(out):
    manifest = {}

    plain = Repo(out, "ed25519", {r: [ed25519()] for r in ROLES})
    plain.publish_root()
    bundles(plain)
    plain.publish()
    manifest["ed25519"] = plain.manifest()

    # ECDSA and RSA roles, a threshold of two for root, and key ids that are not key hashes.
    mixed = Repo(
        out,
        "ecdsa-rsa",
        {
            "root": [ecdsa("root-ecdsa"), rsa("root-rsa")],
            "timestamp": [ecdsa()],
            "snapshot": [rsa()],
            "targets": [ecdsa(), rsa()],
        },
        thresholds={"root": 2, "targets": 2},
    )
    mixed.publish_root()
    bundles(mixed)
    mixed.publish()
    manifest["ecdsa-rsa"] = mixed.manifest()

    # Root rotated twice: 1 -> 2 (new root and timestamp keys) -> 3 (new root keys again).
    rotated = Repo(out, "rotated", {r: [ed25519()] for r in ROLES})
    rotated.publish_root()
    # Version 2 needs two of its keys; version 3 is signed by both and by its own new key.
    rotated.rotate_root([ed25519(), ed25519()], root_threshold=2, timestamp=[ecdsa()])
    rotated.rotate_root([ed25519()])
    bundles(rotated)
    rotated.publish()
    manifest["rotated"] = rotated.manifest()

    # Everything valid but a timestamp that expired in 2020: a frozen mirror.
    frozen = Repo(out, "expired-timestamp", {r: [ed25519()] for r in ROLES})
    frozen.publish_root()
    bundles(frozen)
    frozen.publish(timestamp_expires=datetime(2020, 1, 1, tzinfo=timezone.utc))
    manifest["expired-timestamp"] = frozen.manifest()

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
