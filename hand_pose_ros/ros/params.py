"""Declarative node parameters: one table per node, declared with descriptors and validated.

A node lists its parameters as `Param` rows; `declare_all` declares each one with a
ParameterDescriptor (description, numeric range, read-only) and returns the values after
checking ranges and choices, with an error message naming the parameter, its value and
what is allowed. Also: where the package's share files (config/, models/) live.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "hand_pose_ros"


class ParameterError(ValueError):
    """A parameter value is invalid (raised at start-up, before any work)."""


class StartupError(RuntimeError):
    """A node cannot start (bad parameter, missing or corrupt file); the message says which and why."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None   # inclusive numeric range
    choices: tuple[str, ...] | None = None     # allowed string values
    read_only: bool = False

    def descriptor(self):
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

        extra = f" One of: {', '.join(self.choices)}." if self.choices else ""
        d = ParameterDescriptor(description=self.description + extra, read_only=self.read_only)
        if self.range is not None:
            low, high = self.range
            if isinstance(self.default, bool):
                raise TypeError(f"{self.name}: a bool parameter cannot have a range")
            if isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=0)]
            else:
                d.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
        return d

    def check(self, value) -> None:
        if self.range is not None and not (self.range[0] <= value <= self.range[1]):
            raise ParameterError(f"parameter '{self.name}' = {value!r} is outside "
                                 f"[{self.range[0]}, {self.range[1]}]: {self.description}")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter '{self.name}' = {value!r} is not one of {list(self.choices)}")


def declare_all(node, params: list[Param]) -> dict[str, Any]:
    """Declare every parameter on `node` and return {name: value}, validated.

    Raises ParameterError with the parameter named when a value has the wrong type (e.g. an
    integer written for a float parameter in YAML: write 1.0, not 1) or is out of range.
    """
    from rclpy import exceptions

    # getattr: keep working should an rclpy release lack the type-specific exception.
    type_error = getattr(exceptions, "InvalidParameterTypeException", exceptions.InvalidParameterValueException)
    values = {}
    for p in params:
        try:
            declared = node.declare_parameter(p.name, p.default, p.descriptor())
        except type_error as e:
            raise ParameterError(f"parameter '{p.name}' has the wrong type (expected "
                                 f"{type(p.default).__name__}, e.g. {p.default!r}): {e}") from None
        except exceptions.InvalidParameterValueException as e:
            raise ParameterError(f"parameter '{p.name}' is invalid: {e}. {p.description}") from None
        value = declared.value
        if isinstance(p.default, (list, tuple)):
            value = list(value)
        p.check(value)
        values[p.name] = value
    return values


def declare_for_startup(node, params: list[Param]) -> dict[str, Any]:
    """declare_all, with an invalid value raised as StartupError (the node does not start)."""
    try:
        return declare_all(node, params)
    except ParameterError as e:
        raise StartupError(str(e)) from None


def yaml_keys(path, node_name: str) -> set[str]:
    """The parameter names a `node_name: ros__parameters:` YAML file sets (nested -> dotted)."""
    import yaml

    with open(path) as f:
        document = yaml.safe_load(f) or {}
    section = document.get(node_name, document.get(f"/{node_name}", {}))
    if not isinstance(section, dict) or "ros__parameters" not in section:
        raise ParameterError(f"{path}: no '{node_name}: ros__parameters:' section")

    def flatten(d: dict, prefix: str = ""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flatten(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    return set(flatten(section["ros__parameters"]))


def repo_root() -> Path:
    """The source checkout this module lives in (hand_pose_ros/ros/params.py -> repo)."""
    return Path(__file__).resolve().parents[2]


def share_dir() -> Path:
    """The package share directory: from ament_index on a ROS install, else the repo root
    (editable dev install: config/, launch/ and models/ sit at the top of the checkout)."""
    if os.environ.get("AMENT_PREFIX_PATH"):
        try:
            from ament_index_python.packages import get_package_share_directory

            return Path(get_package_share_directory(PACKAGE))
        except (ImportError, LookupError, ValueError, OSError):
            pass
    return repo_root()


def resolve_share_path(path: str | os.PathLike) -> Path:
    """An absolute path as is; a relative one against the working directory if it exists
    there, else against the package share directory (e.g. 'models/srnet_synthetic.onnx')."""
    path = Path(os.path.expanduser(str(path)))
    if path.is_absolute() or path.exists():
        return path.resolve()
    for base in dict.fromkeys([share_dir(), repo_root()]):
        if (base / path).exists():
            return base / path
    return share_dir() / path
