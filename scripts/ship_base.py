#!/usr/bin/env python3
"""Ship a base model that `sdmlm demo` / `sdmlm replicate` pretrained into the cache: copies the
cache directory (base-KEY, which holds recipe.json and pretrain.json beside the weights) to
models/NAME/ and writes models/NAME/manifest.json: the recipe (cache key, settings, the commands
that rebuild it) and the SHA-256 of every file, which sdmlm checks before it uses the model.

Usage: scripts/ship_base.py CACHE_DIR/base-KEY models/NAME
"""
import hashlib
import json
import pathlib
import shutil
import sys


def main() -> int:
    source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    recipe = json.loads((source / "recipe.json").read_text())
    if not (source / "pretrain.json").exists():
        print(f"{source}: no pretrain.json (not a finished pretraining)", file=sys.stderr)
        return 3
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    files = {}
    for f in sorted(target.iterdir()):
        if f.is_file() and f.name != "manifest.json":
            files[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    size = sum((target / name).stat().st_size for name in files)
    manifest = dict(recipe, files=files, bytes=size)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{target}: {len(files)} files, {size / 1e6:.1f} MB, cache key {recipe['cache_key']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
