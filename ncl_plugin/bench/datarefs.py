"""What a benchmark run was trained and tested on, recorded so that any clone can check it.

A run's record (``bench.json``) names its data as portable references and pins it by a digest of the
images it holds: each image's file name and whether it is tampered or authentic ("Negative"), sorted.
Neither the folder the data lies in nor a list's order changes the digest; an image added, left out or
relabelled does. Runs are compared by that digest, never by where the files lay, so that the same lists
in a fresh clone, at another path or on another machine, are the same data.

A reference is a path as any machine can read it: relative to the current folder (the repository's
root, where the benchmarks run) where the file lies below it, ``<cache>/...`` inside the synthetic
sets' cache, ``<IMDLBenCo>/...`` inside the installed IMDL-BenCo, and as given elsewhere.

The record also pins the values of the run's --config (``config_digest``): a packaged recipe whose values
change under the same name is another budget, and a run of the old values is not kept as one of the new.

Records written before the digests were (a command only) are compared as portably as they allow: the
same reference, else the recorded list's images where that list is readable here, else the list's name.
"""

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ncl_plugin.config import read_config
from ncl_plugin.data.checks import NEGATIVE
from ncl_plugin.errors import UsageError

DATA_FLAGS = ("--data_path", "--test_data_path")
CACHE = "<cache>"
IMDLBENCO = "<IMDLBenCo>"
# The dataset classes a BalancedDataset list names, [["ManiDataset", path], ...]
MEMBER_TYPES = ("ManiDataset", "JsonDataset")


def _roots() -> Dict[str, Path]:
    """{token: the folder it stands for on this machine}, the most specific first."""
    from ncl_plugin.data.synthetic import cache_root

    roots = {CACHE: cache_root()}
    spec = importlib.util.find_spec("IMDLBenCo")  # where it is installed, without importing it (and torch)
    if spec is not None and spec.submodule_search_locations:
        roots[IMDLBENCO] = Path(list(spec.submodule_search_locations)[0])
    return {token: Path(os.path.realpath(folder)) for token, folder in roots.items()}


def reference(path: str) -> str:
    """``path`` as any clone can read it (see the module's docstring); a relative path is kept, normalised."""
    if not os.path.isabs(path):
        return Path(os.path.normpath(path)).as_posix()
    real = Path(os.path.realpath(path))
    for token, root in _roots().items():
        if real.is_relative_to(root):
            return f"{token}/{real.relative_to(root).as_posix()}"
    here = Path(os.path.realpath(os.getcwd()))
    return real.relative_to(here).as_posix() if real.is_relative_to(here) else path


def local_path(ref: str) -> str:
    """A reference as a path on this machine (the inverse of :func:`reference`)."""
    token, sep, rest = ref.partition("/")
    roots = _roots()
    return str(roots[token] / rest) if sep and token in roots else ref


def portable_command(command: Sequence[str]) -> List[str]:
    """A ``benco train`` command with every absolute path in it as a reference."""
    return [reference(value) if os.path.isabs(value) else value for value in command]


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _folder_entries(path: str) -> List[str]:
    """A ManiDataset folder's images (its masks cannot say which are authentic without reading them)."""
    return [f"{name}\ttampered" for name in os.listdir(os.path.join(path, "Tp")) if not name.startswith(".")]


def entries(path: str) -> Optional[List[str]]:
    """One line per image of the dataset at ``path`` (a Tp/+Gt/ folder, a JsonDataset list, a BalancedDataset
    list or a test-set map): its file name and whether it is tampered, prefixed by the test set or member it
    belongs to. None when the dataset cannot be read here."""
    if os.path.isdir(os.path.join(path, "Tp")):
        return _folder_entries(path)
    data = _read_json(path)
    if isinstance(data, dict):  # a test-set map: {name: folder or list}, relative to the map's folder
        found = []
        for name, member in data.items():
            inner = entries(_beside(str(member), path))
            if inner is None:
                return None
            found += [f"{name}/{line}" for line in inner]
        return found
    if not isinstance(data, list) or not all(isinstance(row, list) and len(row) == 2 for row in data):
        return None
    if data and data[0][0] in MEMBER_TYPES:  # a BalancedDataset list
        found = []
        for kind, member in data:
            inner = entries(str(member))
            if inner is None:
                return None
            found += [f"{kind}/{line}" for line in inner]
        return found
    return [
        f"{os.path.basename(str(image))}\t{'authentic' if mask == NEGATIVE else 'tampered'}" for image, mask in data
    ]


def _beside(path: str, listing: str) -> str:
    """A test-set map's path, as the loaders take it: as given if it exists, else relative to the map's folder."""
    if os.path.exists(path) or os.path.isabs(path):
        return path
    candidate = os.path.join(os.path.dirname(os.path.abspath(listing)), path)
    return candidate if os.path.exists(candidate) else path


def _digest_of(found: List[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(sorted(found)).encode("utf-8")).hexdigest()[:16]


def digest(path: str) -> Optional[str]:
    """The digest of the images a dataset holds (see the module's docstring); None when it cannot be read."""
    found = entries(local_path(path))
    return None if found is None else _digest_of(found)


def describe(path: str) -> Dict:
    """What a record says of one dataset: its reference, and its images' count and digest where readable."""
    found = entries(local_path(path))
    said = {"reference": reference(path)}
    if found is not None:
        said.update(images=len(found), digest=_digest_of(found))
    return said


def flag_value(command: Sequence[str], flag: str) -> Optional[str]:
    """The value a command gives ``flag`` (its last, as argparse takes it), None without it."""
    values = [command[i + 1] for i, value in enumerate(command[:-1]) if value == flag]
    return values[-1] if values else None


def config_digest(name: Optional[str]) -> Optional[str]:
    """A digest of the values a --config (packaged name or YAML file) holds now, None where it names nothing
    readable. A packaged recipe may change between releases while its name stays."""
    if name is None:
        return None
    try:
        values = read_config(name)
    except UsageError:
        return None
    return _digest_of([json.dumps(values, sort_keys=True, default=str)])


def record(command: Sequence[str]) -> Dict:
    """A run's record: its command, portable, each dataset it names described, and its config's values pinned."""
    data = {flag: describe(flag_value(command, flag)) for flag in DATA_FLAGS if flag_value(command, flag)}
    config = config_digest(flag_value(command, "--config"))
    from ncl_plugin.engine import imdlbenco_line

    return {"command": portable_command(command), **({"data": data} if data else {}),
            **({"config_digest": config} if config else {}), **imdlbenco_line.installed().record()}  # fmt: skip


def same_config(recorded: Dict, name: Optional[str]) -> bool:
    """Whether the config a record names still holds the values it trained with (records from before the
    digest, and configs not readable here, are taken at their name)."""
    before = recorded.get("config_digest")
    if before is None:
        return True
    now = config_digest(name)
    return now is None or before == now


def _tail(path: str) -> str:
    """What names a list on any machine: a synthetic set's folder (its name holds its settings) and the
    file below it, else the file's name."""
    parts = Path(path).parts
    for index, part in enumerate(parts):
        if part.startswith("synthetic-"):
            return "/".join(parts[index:])
    return Path(path).name


def same_data(recorded: Dict, flag: str, path: Optional[str]) -> bool:
    """Whether a record's ``flag`` names the same data as ``path`` does now."""
    said = (recorded.get("data") or {}).get(flag)
    before = flag_value(recorded.get("command") or [], flag)
    if before is None or path is None:
        return before is None and path is None
    if said and said.get("digest"):
        return said["digest"] == digest(path)
    if reference(before) == reference(path):
        return True
    readable = digest(before)  # a record from before the digests, of data this machine holds
    if readable is not None:
        return readable == digest(path)
    return _tail(before) == _tail(path)


def _masked(command: Sequence[str]) -> List[str]:
    """A command with its datasets' paths left out: they are compared by what they hold."""
    return [value if i == 0 or command[i - 1] not in DATA_FLAGS else "<data>" for i, value in enumerate(command)]


def differences(recorded: Dict, command: Sequence[str]) -> List[str]:
    """What differs between a run's record and ``command``: its changed flags and values, and each data flag
    whose data is not the same."""
    before = _masked(portable_command(recorded.get("command") or []))
    now = _masked(portable_command(command))
    changed = (sorted(set(before) ^ set(now)) or ["the order of its flags"]) if before != now else []
    if not same_config(recorded, flag_value(command, "--config")):
        changed.append("--config (its values changed since the run)")
    for flag in DATA_FLAGS:
        path = flag_value(command, flag)
        if not same_data(recorded, flag, path):
            changed.append(f"{flag} ({'not readable here' if path and digest(path) is None else 'other images'})")
    return list(dict.fromkeys(changed))
