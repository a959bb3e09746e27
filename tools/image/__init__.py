"""Host-side ESP32 image tool for acupdate: build synthetic app images, inspect any image.

    from tools.image import build_app, build_merged, inspect, CHIPS, ImageInfo, ImageError

build_app() makes a valid app image (header, segments starting with esp_app_desc_t,
checksum, optional SHA-256) that `esptool image-info` accepts; build_merged() makes a
bootloader + partition table + app download as `esptool merge-bin` would; inspect()
checks any bytes and reports problems in ImageInfo.errors without raising, the signature
sector of a signed image too (tools.image.signature).
"""

from .builder import build_app, build_bootloader, build_merged, build_partition_table
from .format import CHIPS, ImageError
from .reader import ImageInfo, image_length, inspect

__all__ = [
    "CHIPS",
    "ImageError",
    "ImageInfo",
    "build_app",
    "build_bootloader",
    "build_merged",
    "build_partition_table",
    "image_length",
    "inspect",
]
