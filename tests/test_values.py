"""Values are JSON data, refused at the edge with an error naming the address and the type."""

from __future__ import annotations

import math

import pytest

from commrouter import InvalidAddress, RouterNotRunning, ValueNotJSON
from commrouter.router.values import check_address, check_json
from tests.conftest import World


@pytest.mark.parametrize(
    "value", [None, True, 0, -3, 1.5, "text", [], {}, [1, [2, {"a": None}]], {"k": [1.0, "x"]}]
)
def test_json_values_pass(value):
    assert check_json("/a", value) is value


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "set"),
        (b"bytes", "bytes"),
        (object(), "object"),
        ({"nested": [1, {"deep": 1j}]}, "complex"),
        (math.nan, "float (NaN or infinity)"),
        ([math.inf], "float (NaN or infinity)"),
        ({("tuple", "key"): 1}, "tuple (as a mapping key)"),
    ],
)
def test_non_json_values_are_refused_naming_address_and_type(value, type_name):
    with pytest.raises(ValueNotJSON) as caught:
        check_json("/slider/7", value)
    assert caught.value.address == "/slider/7"
    assert caught.value.value_type == type_name
    assert "'/slider/7'" in str(caught.value) and type_name in str(caught.value)


@pytest.mark.parametrize("address", ["", None, 3, "#heartbeat/ping"])
def test_bad_addresses_are_refused(address):
    with pytest.raises(InvalidAddress):
        check_address(address)


def test_router_send_refuses_before_anything_enters_the_actors(world: World):
    with pytest.raises(ValueNotJSON, match=r"'/x'.*set"):
        world.router.send("/x", {1})
    world.settle()
    assert world.front_end.published == []


def test_using_a_router_that_is_not_running_is_a_clear_error(world: World):
    world.router.stop()
    with pytest.raises(RouterNotRunning, match="start"):
        world.router.send("/x", 1)
