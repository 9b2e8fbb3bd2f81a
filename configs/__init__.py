"""YAML configs shipped with the plugin; `benco train --config quickstart` finds them by name."""
