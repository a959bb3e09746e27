# acupdate.ota.errors: ESP-IDF's error codes, as esp32.Partition raises them (OSError with
# the negative code when no errno matches), in words a person can act on.

# (code, name, what it means here)
_CODES = (
    (-1, "ESP_FAIL", "the operation failed"),
    (-0x101, "ESP_ERR_NO_MEM", "ESP-IDF is out of memory"),
    (-0x102, "ESP_ERR_INVALID_ARG", "an argument is not valid (not an app partition?)"),
    (-0x103, "ESP_ERR_INVALID_STATE", "not possible in the current state"),
    (-0x105, "ESP_ERR_NOT_FOUND", "the partition or the OTA data was not found"),
    (-0x1501, "ESP_ERR_OTA_PARTITION_CONFLICT", "that is the running partition"),
    (-0x1502, "ESP_ERR_OTA_SELECT_INFO_INVALID", "the otadata partition is not valid"),
    (
        -0x1503,
        "ESP_ERR_OTA_VALIDATE_FAILED",
        "the image in the slot is not a valid app image for this chip (magic, segments, "
        "checksum or SHA-256)",
    ),
    (-0x1504, "ESP_ERR_OTA_SMALL_SEC_VER", "its secure version is below the chip's"),
    (-0x1505, "ESP_ERR_OTA_ROLLBACK_FAILED", "there is no valid image to roll back to"),
    (-0x1506, "ESP_ERR_OTA_ROLLBACK_INVALID_STATE", "the running image is not yet confirmed"),
)


def words(e):
    """'ESP_ERR_OTA_VALIDATE_FAILED (-5379): the image in the slot is ...' for the OSError
    `e` that an esp32.Partition call raised; its errno name, or its text, otherwise."""
    code = e.args[0] if e.args else None
    for c, name, what in _CODES:
        if c == code:
            return "%s (%d): %s" % (name, c, what)
    if isinstance(code, int):
        import errno

        return errno.errorcode.get(code, "OS error %d" % code)
    return str(code)
