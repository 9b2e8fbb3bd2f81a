"""YAML configs: errors name the file and line, and nothing in a config runs code."""
from helpers import error_of


def test_invalid_yaml_names_the_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model: ncl\nepochs: [3\n")
    code, err = error_of(["train", "--config", config], capsys)
    assert code == 2 and len(err) == 1 and f"--config {config}: invalid YAML at line" in err[0]


def test_yaml_is_read_safely(tmp_path, capsys):
    config = tmp_path / "evil.yaml"
    config.write_text("model: !!python/object/apply:os.system ['touch " + str(tmp_path / "pwned") + "']\n")
    code, err = error_of(["train", "--config", config], capsys)
    assert code == 2 and "invalid YAML" in err[0]
    assert not (tmp_path / "pwned").exists()
