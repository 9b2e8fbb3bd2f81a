"""Command-line flags, YAML configs and the model's own flags, merged into one config.

Precedence: parser defaults < ``--config FILE.yaml`` < flags given on the
command line. The YAML file is flat: its keys are flag names without the
leading dashes (``epochs: 10``, ``patch_size: 16``), for the subcommand's
flags and the chosen model's flags alike.
"""

import argparse
import difflib
import inspect
import types
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import yaml

from ncl_plugin.errors import UsageError
from ncl_plugin.terminal import say

PACKAGED_CONFIGS = "ncl_plugin.configs"


def closest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def packaged_config(name: str) -> Optional[Path]:
    """``quickstart`` or ``protocols/casiav2`` -> the YAML file shipped inside the package."""
    root = resources.files(PACKAGED_CONFIGS)
    for candidate in (name, f"{name}.yaml"):
        path = root.joinpath(candidate)
        if path.is_file():
            return Path(str(path))
    return None


def read_config(path: str) -> Dict:
    """Read a flat YAML mapping with ``yaml.safe_load``; errors name the file."""
    file = Path(path)
    if not file.is_file():
        shipped = packaged_config(path)
        if shipped is None:
            raise UsageError(f"--config {path}: no such file (packaged configs: {', '.join(list_configs())})")
        file = shipped
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"--config {file}: invalid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {file}: expected a mapping of flag names to values, got {type(data).__name__}")
    return data


def list_configs() -> List[str]:
    root = Path(str(resources.files(PACKAGED_CONFIGS)))
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def model_parameters(model_class) -> Dict[str, inspect.Parameter]:
    target = model_class if isinstance(model_class, (types.FunctionType, types.MethodType)) else model_class.__init__
    return {k: v for k, v in inspect.signature(target).parameters.items() if k != "self"}


def get_model_class(name: str):
    from IMDLBenCo.registry import MODELS

    import ncl_plugin  # noqa: F401  (registers NCL and DeepLabV3Plus)

    if not name:
        raise UsageError("--model is required (for example --model ncl)")
    if not MODELS.has(name):
        raise UsageError(
            f"--model {name!r} is not registered in IMDL-BenCo's MODELS{closest(name, MODELS.module_dict)}"
        )
    return MODELS.get(name)


def all_model_flags() -> set:
    """The constructor arguments of every model registered in IMDL-BenCo's MODELS."""
    from IMDLBenCo.registry import MODELS

    flags = set()
    for model_class in MODELS.module_dict.values():
        try:
            flags |= set(model_parameters(model_class))
        except (TypeError, ValueError):
            continue
    return flags - {"args", "kwargs"}


def boolean(text: str) -> bool:
    """A flag's true or false; IMDL-BenCo types an unannotated ``x=False`` as str, so that
    ``--x False`` arrives as the truthy string 'False'."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def sequence_of(kind: type):
    """A comma list (``8,4,2,1``, or ``[8, 4, 2, 1]`` as a config or a checkpoint writes it) of ``kind``."""

    def parse_list(text: str) -> list:
        return [kind(part) for part in str(text).strip("[]() ").split(",") if part.strip()]

    parse_list.__name__ = f"list of {kind.__name__}"
    return parse_list


def _typed_by_default(parameter: inspect.Parameter):
    """The type an unannotated model argument's default implies, where IMDL-BenCo would parse a str."""
    import typing

    default, annotation = parameter.default, parameter.annotation
    if annotation is bool or isinstance(default, bool):
        return boolean
    if typing.get_origin(annotation) in (list, tuple) and typing.get_args(annotation)[:1] in ((int,), (float,), (str,)):
        return sequence_of(typing.get_args(annotation)[0])  # argparse cannot call List[int]
    if annotation is not inspect.Parameter.empty:
        return None
    if isinstance(default, (int, float)):
        return type(default)
    if isinstance(default, (list, tuple)) and default and len({type(v) for v in default}) == 1:
        kind = type(default[0])
        return sequence_of(kind) if kind in (int, float, str) else None
    return None


def model_argparser(model_class) -> argparse.ArgumentParser:
    """IMDL-BenCo's ``misc.create_argparser``, with the unannotated booleans, numbers and lists of
    the zoo's constructors typed by their defaults (``--conv_pretrain False`` is false here)."""
    from IMDLBenCo.training_scripts.utils import misc

    try:
        parser = misc.create_argparser(model_class)
    except KeyError as err:  # IMDL-BenCo refuses *args / **kwargs in a model's __init__
        raise UsageError(f"model {getattr(model_class, '__name__', model_class)}: {err.args[0]}") from None
    parser.prog = f"model flags of {getattr(model_class, '__name__', model_class)}"
    parameters = model_parameters(model_class)
    for action in parser._actions:
        kind = _typed_by_default(parameters[action.dest]) if action.dest in parameters else None
        if kind is not None:
            action.type = kind
    return parser


def _apply_yaml(parser: argparse.ArgumentParser, values: Dict, source: str) -> None:
    """Make ``values`` the parser's defaults, each converted to (and checked against) the flag's type."""
    actions = {a.dest: a for a in parser._actions}
    for key, value in values.items():
        kind = actions[key].type
        if kind is None or value is None:
            continue
        expected = getattr(kind, "__name__", str(kind))
        try:
            if isinstance(value, bool) and kind not in (bool, boolean):
                raise ValueError
            if kind is int and isinstance(value, float) and value != int(value):
                raise ValueError
            values[key] = kind(value if isinstance(value, str) else str(int(value) if kind is int else value))
        except (TypeError, ValueError):
            raise UsageError(f"--config {source}: {key}: expected {expected}, got {value!r}") from None
    parser.set_defaults(**values)


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one UsageError line, with the closest valid flag."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            first = message.split(":", 1)[1].split()[0]
            flags = [s.lstrip("-") for a in self._actions for s in a.option_strings if s.startswith("--")]
            message += closest(first.lstrip("-").split("=")[0], flags)
        raise UsageError(message)


def _config_model_flags(config_model: Optional[str], model_class, shared: set) -> set:
    """The flags of the model a config names, when another model is trained with it: what it must not give that one.

    None when the config names no model, or one of the same family (a subclass either way, as
    deeplabv3plus of ncl: it shares NCL's network flags). Flags of the command itself stay shared.
    """
    if not config_model or not isinstance(model_class, type):
        return set()
    try:
        config_class = get_model_class(config_model)
        if not isinstance(config_class, type):
            return set()
        related = issubclass(model_class, config_class) or issubclass(config_class, model_class)
        return set() if related else {a.dest for a in model_argparser(config_class)._actions} - shared - {"help"}
    except UsageError:
        return set()  # a config naming an unknown model is reported where that model is built


def model_defaults(model: str, config: Optional[str] = None) -> Dict:
    """The values of the model's own flags that ``benco train --model MODEL --config CONFIG`` gives
    when the command line sets none of them: the constructor's defaults, then the config's, kept by
    the rule ``parse`` follows. A config that can no longer be read counts as none. Raises UsageError
    for a model not registered in IMDL-BenCo's MODELS."""
    model_class = get_model_class(model)
    parser = model_argparser(model_class)
    dests = {a.dest for a in parser._actions} - {"help"}
    try:
        given = read_config(config) if config else {}
    except UsageError:
        given = {}
    foreign = _config_model_flags(given.get("model"), model_class, set())
    _apply_yaml(parser, {k: v for k, v in given.items() if k in dests and k not in foreign}, str(config))
    return vars(parser.parse_args([]))


def parse(
    parser: argparse.ArgumentParser,
    argv: List[str],
    known_config_keys: Iterable[str],
    with_model: bool = True,
    inherit: Optional[Callable[[argparse.Namespace], Tuple[Optional[str], Dict]]] = None,
) -> Tuple[argparse.Namespace, Optional[argparse.Namespace], Optional[type]]:
    """Parse ``argv`` for one subcommand: its flags, the YAML config and the model's flags.

    The model's flags (IMDL-BenCo's ``misc.create_argparser``) join the
    subcommand's parser as a group; where both define a name, the subcommand's
    flag wins, as in IMDL-BenCo's scripts. ``known_config_keys`` are the flags
    of every subcommand: a config written for ``train`` also serves ``test``,
    each taking the keys it knows. ``inherit`` maps the early flags (--config,
    --model, --checkpoint) to a model name and defaults taken from a
    checkpoint; they rank below the YAML file.
    Returns (args, model_args, model_class); the last two are None when ``with_model`` is False.
    """
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--model", default=None)
    pre.add_argument("--checkpoint", "--checkpoint_path", dest="checkpoint", default=None)
    pre.add_argument("--trust_checkpoint", action="store_true")
    early, _ = pre.parse_known_args(argv)
    config = read_config(early.config) if early.config else {}
    inherited_model, inherited = inherit(early) if inherit else (None, {})

    own = {a.dest for a in parser._actions}
    model_class, model_keys = None, set()
    wants_help = "-h" in argv or "--help" in argv
    if with_model and wants_help and not (early.model or config.get("model") or inherited_model):
        parser.epilog = "Add --model NAME (e.g. --model ncl) to --help to list that model's own flags too."
        parser.parse_args(["--help"])  # prints the command's flags and exits 0
    if with_model:
        model_class = get_model_class(early.model or config.get("model") or inherited_model)
        model_parser = model_argparser(model_class)
        group = parser.add_argument_group(f"flags of the model {getattr(model_class, '__name__', '')}")
        for action in model_parser._actions:
            if action.dest == "help":
                continue
            model_keys.add(action.dest)
            if action.dest not in own:
                group.add_argument(
                    *action.option_strings, dest=action.dest, type=action.type, default=action.default, help=action.help
                )
        if inherited_model:
            inherited = {**inherited, "model": inherited_model}
    valid = set(known_config_keys) | own | model_keys
    other_models = all_model_flags() - valid if with_model else set()
    foreign = (
        _config_model_flags(config.get("model"), model_class, set(known_config_keys) | own) & model_keys
        if with_model
        else set()
    )
    for key in list(config):
        if key in foreign:
            # A flag of the config's own model is that model's architecture; the model trained here
            # may share the name by chance (IML_ViT's ViT patch_size is not NCL's patch_size).
            say(
                f"--config {early.config}: {key} is a flag of {config['model']}, the config's model, "
                f"not of {getattr(model_class, '__name__', '')}; ignored"
            )
            del config[key]
        elif key in other_models:
            # A config shared by several models (quickstart, a protocol) may set flags this model lacks.
            say(f"--config {early.config}: {key} is not a flag of {getattr(model_class, '__name__', '')}; ignored")
            del config[key]
        elif key not in valid:
            raise UsageError(f"--config {early.config}: unknown key {key!r}{closest(key, valid - {'help'})}")
    dests = {a.dest for a in parser._actions}
    parser.set_defaults(**{k: v for k, v in inherited.items() if k in dests})
    _apply_yaml(parser, {k: v for k, v in config.items() if k in dests}, early.config)
    args = parser.parse_args(argv)
    if not with_model:
        return args, None, None
    model_args = argparse.Namespace(**{k: getattr(args, k) for k in sorted(model_keys)})
    return args, model_args, model_class


def model_kwargs(model_class, args: argparse.Namespace, model_args: argparse.Namespace) -> Dict:
    """IMDL-BenCo's rule: a main-script flag with the same name as a model argument wins."""
    params = model_parameters(model_class)
    kwargs = {k: v for k, v in vars(args).items() if k in params}
    for k, v in vars(model_args).items():
        if k in params and k not in kwargs:
            kwargs[k] = v
    return kwargs
