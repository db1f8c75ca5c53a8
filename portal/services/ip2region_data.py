"""Values of ip2region's database that places.py compares: its data (Chinese), not the portal's words."""

CHINA = "中国"  # the country field of mainland, Hong Kong, Macao and Taiwan addresses
PROVINCE_SUFFIXES = "省市"  # 北京|北京市, 广东省|广州市: a city named after its province is shown once
