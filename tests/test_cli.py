"""The `benco` command line: subcommands, IMDL-BenCo's own commands, configs and flags."""
import pytest

from ncl_plugin import cli
from ncl_plugin.commands import config_keys, train
from ncl_plugin.config import parse
from ncl_plugin.errors import UsageError


def parse_train(argv):
    return parse(train.parser(), argv, config_keys())


def test_help_lists_every_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("train", "test", "calibrate", "test-robust", "complexity", "predict", "synth", "init", "env", "-v"):
        assert f"\n  {command} " in text


def test_benco_init_still_writes_imdlbenco_scripts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["init"]) == 0
    for name in ("train.py", "test.py", "test_robust.py", "mymodel.py", "train_mymodel.sh"):
        assert (tmp_path / name).is_file(), name


def test_yaml_value_is_overridden_by_the_same_flag(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: ncl\nepochs: 7\npatch_size: 16\nbackbone: resnet18\nif_resizing: true\n")
    args, model_args, model_class = parse_train(["--config", str(config), "--epochs", "3", "--patch_size", "8"])
    assert args.epochs == 3 and model_args.patch_size == 8  # the command line wins
    assert model_args.backbone == "resnet18" and args.if_resizing is True  # the rest comes from the file
    assert args.image_size == 512 and model_class.__name__ == "NCL"  # and the defaults fill the gaps


def test_unknown_yaml_key_is_a_clear_error_with_the_closest_key(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: ncl\nepoch: 7\n")
    with pytest.raises(UsageError, match=r"run.yaml: unknown key 'epoch'; did you mean 'epochs'\?"):
        parse_train(["--config", str(config)])


def test_packaged_configs_are_found_by_name():
    args, model_args, _ = parse_train(["--config", "quickstart"])
    assert args.model == "ncl" and model_args.backbone == "resnet10t" and args.augment == "lossless" and args.image_size % 32 == 0
    args, model_args, _ = parse_train(["--config", "ncl"])
    assert model_args.backbone == "resnet101" and model_args.output_stride == 8 and args.image_size == 512


def test_the_quickstart_trains_channels_last_unless_told_not_to():
    import torch

    from ncl_plugin.engine.runtime import build_model

    layouts = {}
    for extra in ([], ["--no_channels_last"]):
        args, model_args, model_class = parse_train(["--config", "quickstart", *extra])
        args.distributed = False
        model, _ = build_model(model_class, args, model_args, torch.device("cpu"))
        stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).weight
        layouts[bool(extra)] = (args.channels_last, stem.is_contiguous(memory_format=torch.channels_last), stem.is_contiguous())
    assert layouts[False] == (True, True, False)  # configs/quickstart.yaml: channels_last: true
    assert layouts[True] == (False, False, True)  # the flag wins over the file
    assert parse_train(["--model", "ncl"])[0].channels_last is False  # elsewhere the default stays off


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "nlc"], r"--model 'nlc' is not registered in IMDL-BenCo's MODELS; did you mean 'ncl'\?"),
        (["--model", "ncl", "--patch_size", "big"], r"argument --patch_size: invalid int value: 'big'"),
        (["--model", "ncl", "--pach_size", "16"], r"unrecognized arguments: --pach_size 16; did you mean 'patch_size'\?"),
        (["--model", "ncl", "--config", "/no/such.yaml"], r"--config /no/such.yaml: no such file"),
    ],
)
def test_bad_flags_are_one_line_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_train(argv)


def test_yaml_value_of_the_wrong_type_names_the_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model: ncl\npatch_size: sixteen\n")
    with pytest.raises(UsageError, match="bad.yaml: patch_size: expected int, got 'sixteen'"):
        parse_train(["--config", str(config)])


def test_cli_prints_usage_errors_without_a_traceback(capsys):
    assert cli.main(["train", "--model", "ncl", "--data_path", "/no/such/data", "--test_data_path", "/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["benco train: error: --data_path /no/such/data: no such file or folder"]


def test_model_flags_reach_the_model_and_main_flags_win():
    from ncl_plugin.config import model_kwargs

    args, model_args, model_class = parse_train(["--model", "ncl", "--temperature", "0.3", "--backbone", "resnet34"])
    kwargs = model_kwargs(model_class, args, model_args)
    assert kwargs["temperature"] == pytest.approx(0.3) and kwargs["backbone"] == "resnet34"


def test_a_shared_config_ignores_flags_of_other_models(capsys):
    args, model_args, model_class = parse_train(["--config", "quickstart", "--model", "unet"])
    assert model_class.__name__ == "unet" and vars(model_args) == {}
    assert args.epochs > 0 and args.image_size % 32 == 0
    assert "backbone is not a flag of unet; ignored" in capsys.readouterr().err


def test_a_config_keeps_its_own_models_flags_from_another_model_of_the_same_name(capsys):
    # quickstart is NCL's: its patch_size is NCL's contrastive patch, not IML_ViT's ViT patch.
    args, model_args, _ = parse_train(["--config", "quickstart", "--model", "IML_ViT", "--patch_size", "8"])
    assert model_args.patch_size == 8  # a flag given on the command line is the user's
    args, model_args, _ = parse_train(["--config", "ncl", "--model", "IML_ViT"])
    assert model_args.patch_size == 16 and args.image_size == 512  # IML_ViT's own default; the budget is shared
    assert "patch_size is a flag of ncl, the config's model, not of IML_ViT; ignored" in capsys.readouterr().err
    args, model_args, _ = parse_train(["--config", "ncl", "--model", "deeplabv3plus"])
    assert model_args.patch_size == 32 and model_args.backbone == "resnet101"  # NCL's network: its flags apply


def test_a_model_whose_weight_file_is_missing_is_a_one_line_error(tmp_path):
    import torch

    from ncl_plugin.engine.runtime import build_model

    missing = tmp_path / "no_such_weights.pth"
    args, model_args, model_class = parse_train(["--model", "segformer", "--pretrain_pth_path", str(missing)])
    args.distributed = False
    with pytest.raises(UsageError) as caught:
        build_model(model_class, args, model_args, torch.device("cpu"))
    message = str(caught.value)
    assert message.startswith("--model segformer could not be built: FileNotFoundError")
    assert str(missing) in message and "\n" not in message


@pytest.mark.parametrize("command", ["test", "test-robust", "complexity", "predict"])
def test_help_without_a_model_lists_the_commands_flags(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: benco {command}") and "--model" in out
    assert "Add --model NAME" in out and "--patch_size" not in out  # the model's flags need --model


def test_augment_names_imdlbenco_lossless_or_none():
    from ncl_plugin.data import loaders

    lossless = [type(t).__name__ for t in loaders.train_transform("lossless").transforms]
    assert lossless == ["HorizontalFlip", "VerticalFlip", "RandomRotate90"]  # nothing resamples, blurs or re-encodes
    assert "RandomScale" in [type(t).__name__ for t in loaders.train_transform("imdlbenco").transforms]
    assert loaders.train_transform("none").transforms == []
    with pytest.raises(UsageError, match="--augment flip: use one of imdlbenco, lossless, none"):
        loaders.train_transform("flip")
